//! Whether the steering team's shared files (`../shared`, beside the clone) are here: the ASL
//! conformance test is skipped, and reported as skipped, where they are not (a user's clone).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(shared_corpus)");
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/asl-conformance");
    println!("cargo::rerun-if-changed={}", corpus.display());
    if corpus.is_dir() {
        println!("cargo::rustc-cfg=shared_corpus");
    }
}
