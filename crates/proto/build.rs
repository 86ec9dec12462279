//! Compiles every `.proto` under `proto/` with the protoc shipped by `protoc-bin-vendored`,
//! so a clean machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY of intent: build scripts are single-threaded; set before codegen runs.
        std::env::set_var("PROTOC", protoc);
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
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
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure().compile_protos(&files, &[root])?;
    Ok(())
}
