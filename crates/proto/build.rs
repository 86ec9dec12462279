//! Compiles every `.proto` under `proto/` with the protoc shipped by `protoc-bin-vendored`,
//! so a clean machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY of intent: build scripts are single-threaded; set before codegen runs.
        std::env::set_var("PROTOC", protoc);
    }
    // Read when the script runs, not when it was compiled: a script built in another
    // checkout that shares the target folder must still compile this checkout's files.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let files = [
        "common.proto",
        "events.proto",
        "directory.proto",
        "backup.proto",
        "diff.proto",
        "audit.proto",
        "recovery.proto",
        "token.proto",
    ]
    .map(|f| root.join("backtrack/v1").join(f));
    // Relative to this package, not absolute, for the same reason.
    println!("cargo:rerun-if-changed=../../proto/backtrack/v1");
    tonic_prost_build::configure().compile_protos(&files, &[root])?;
    Ok(())
}
