// The commit the binary is built from, as the wrapper exported it: the *value* of
// JCODE_BUILD_GIT_HASH (buildpolicy's git_meta decision), never .git's mtimes, so
// this script reruns exactly when HEAD moves and a same-commit build stays fresh.
fn main() {
    for name in ["JCODE_BUILD_GIT_HASH", "JCODE_BUILD_GIT_DATE"] {
        println!("cargo:rerun-if-env-changed={name}");
        let value = std::env::var(name).unwrap_or_else(|_| "unknown".into());
        println!("cargo:rustc-env=DEMO_{name}={value}");
    }
}
