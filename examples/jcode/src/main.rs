fn main() {
    let mut features = Vec::new();
    if cfg!(feature = "pdf") {
        features.push("pdf");
    }
    if cfg!(feature = "embeddings") {
        features.push("embeddings");
    }
    if cfg!(feature = "bedrock") {
        features.push("bedrock");
    }
    println!(
        "jcode-demo {} ({}) features: [{}]",
        env!("DEMO_JCODE_BUILD_GIT_HASH"),
        env!("DEMO_JCODE_BUILD_GIT_DATE"),
        features.join(", ")
    );
}
