//! Compiles `proto/gloss/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! tonic client/server code plus a descriptor set for server reflection.

use std::path::{Path, PathBuf};

/// The proto tree, relative to this package. `rerun-if-changed` paths stay relative so they are
/// resolved in whichever checkout builds: two clones sharing one target directory must not
/// watch each other's files.
const PROTO_ROOT: &str = "../../proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary is shared by checkouts that share a target
    // directory, so a path baked in at compile time may be another checkout's.
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join(PROTO_ROOT);
    let relative_dir = Path::new(PROTO_ROOT).join("gloss/v1");
    let mut names: Vec<String> = std::fs::read_dir(root.join("gloss/v1"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".proto"))
        .collect();
    names.sort();
    println!("cargo:rerun-if-changed={}", relative_dir.display());
    for n in &names {
        println!("cargo:rerun-if-changed={}", relative_dir.join(n).display());
    }
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| root.join("gloss/v1").join(n))
        .collect();
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("gloss_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
