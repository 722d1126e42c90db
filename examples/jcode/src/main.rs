fn main() {
    let mut features = Vec::new();
    if cfg!(feature = "pdf") {
        features.push("pdf");
    }
    if cfg!(feature = "embeddings") {
        features.push("embeddings");
    }
    println!("jcode-demo features: [{}]", features.join(", "));
}
