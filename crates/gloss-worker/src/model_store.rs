//! Models on a worker's disk: base models (encoders) referenced by name and SHA-256 digest in the
//! configured models directory, and registry artifacts packed as tar files for upload and
//! unpacked after download.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// SHA-256 over a directory: every regular file in path order, each as its relative path, a NUL,
/// its length (u64, big-endian) and its bytes. Stable across machines and copies.
pub fn dir_digest(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    for rel in files {
        let bytes = std::fs::read(dir.join(&rel))
            .with_context(|| format!("reading {}", dir.join(&rel).display()))?;
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(&bytes);
    }
    Ok(hex(&hash.finalize()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory of base model `name` under `models_dir`, after checking its digest.
pub fn base_model(models_dir: &Path, name: &str, expected_sha256: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        bail!("base model name {name:?} must be a plain directory name");
    }
    let dir = models_dir.join(name);
    if !dir.is_dir() {
        bail!(
            "base model {name:?} is not in this worker's models directory {}",
            models_dir.display()
        );
    }
    if expected_sha256.is_empty() {
        bail!(
            "base model {name:?} needs its sha256 in the job config (`gloss digest DIR` prints it)"
        );
    }
    let actual = dir_digest(&dir)?;
    if actual != expected_sha256 {
        bail!("base model {name:?} has digest {actual}, but the job expects {expected_sha256}: refusing to load it");
    }
    Ok(dir)
}

/// A directory packed as a tar archive in memory.
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    for rel in files {
        builder
            .append_path_with_name(dir.join(&rel), &rel)
            .with_context(|| format!("packing {}", rel.display()))?;
    }
    Ok(builder.into_inner()?)
}

/// Unpacks a tar archive into `dir` (created).
pub fn unpack(bytes: &[u8], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    tar::Archive::new(bytes)
        .unpack(dir)
        .with_context(|| format!("unpacking a model into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_depend_on_names_and_bytes_and_mismatches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("enc");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("config.json"), "{}").unwrap();
        std::fs::write(m.join("sub/w.bin"), [1, 2, 3]).unwrap();
        let d = dir_digest(&m).unwrap();
        assert_eq!(d.len(), 64);
        assert_eq!(base_model(dir.path(), "enc", &d).unwrap(), m);
        std::fs::write(m.join("sub/w.bin"), [1, 2, 4]).unwrap();
        let err = base_model(dir.path(), "enc", &d).unwrap_err().to_string();
        assert!(err.contains("refusing to load"), "{err}");
        assert!(base_model(dir.path(), "enc", "")
            .unwrap_err()
            .to_string()
            .contains("needs its sha256"));
        assert!(base_model(dir.path(), "../x", &d).is_err());
        let packed = pack(&m).unwrap();
        let out = dir.path().join("out");
        unpack(&packed, &out).unwrap();
        assert_eq!(dir_digest(&out).unwrap(), dir_digest(&m).unwrap());
    }
}
