//! `glossctl dataset import PROJECT/DATASET ./photos/`: a folder of images becomes a JSONL
//! stream, one record per image file (`{"image": "data:...;base64,...", "meta": {"file": ..}}`),
//! sent as it is read, so a large folder never sits in memory. The coordinator checks every
//! image; its errors name a line, which is mapped back to the file here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use gloss_proto::v1::RecordError;
use tokio::io::AsyncWriteExt;

/// Extensions taken as images, and the media type a data URI names for each (the coordinator
/// decides the real type from the bytes).
const IMAGE_TYPES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
];

/// The image files directly inside `dir`, sorted by name, and the other files skipped.
pub fn image_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        if media_type(&path).is_some() {
            images.push(path);
        } else {
            skipped.push(file_name(&path));
        }
    }
    images.sort();
    skipped.sort();
    Ok((images, skipped))
}

fn media_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    IMAGE_TYPES
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, media)| *media)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One JSONL record (with its newline) for an image file.
pub fn record(path: &Path, bytes: &[u8]) -> String {
    let media = media_type(path).unwrap_or("application/octet-stream");
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut line = serde_json::json!({
        "image": format!("data:{media};base64,{b64}"),
        "meta": {"file": file_name(path)},
    })
    .to_string();
    line.push('\n');
    line
}

/// A reader of the JSONL stream of `files`, written by a task that reads one file at a time.
pub fn stream(files: Vec<PathBuf>) -> tokio::io::DuplexStream {
    let (mut tx, rx) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        for path in files {
            let line = match tokio::fs::read(&path).await {
                Ok(bytes) => record(&path, &bytes),
                // An unreadable file still takes its line, so later lines keep their numbers; the
                // coordinator refuses the empty image and the error names the file.
                Err(_) => format!(
                    "{}\n",
                    serde_json::json!({"image": "data:image/png;base64,", "meta": {"file": file_name(&path)}})
                ),
            };
            if tx.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = tx.shutdown().await;
    });
    rx
}

/// The coordinator's record errors with each line's file named.
pub fn name_files(errors: &[RecordError], files: &[PathBuf]) -> Vec<RecordError> {
    errors
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(path) = (e.line as usize).checked_sub(1).and_then(|i| files.get(i)) {
                e.reason = format!("{}: {}", path.display(), e.reason);
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_lists_its_images_in_name_order_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "notes.txt", "c.webp"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let (images, skipped) = image_files(dir.path()).unwrap();
        let names: Vec<String> = images.iter().map(|p| file_name(p)).collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "c.webp"]);
        assert_eq!(skipped, ["notes.txt"]);
    }

    #[test]
    fn a_record_holds_the_image_inline_and_names_the_file() {
        let line = record(Path::new("/x/cat.png"), &[1, 2, 3]);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["image"], "data:image/png;base64,AQID");
        assert_eq!(v["meta"]["file"], "cat.png");
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn errors_name_the_file_of_their_line() {
        let files = vec![PathBuf::from("p/a.png"), PathBuf::from("p/b.png")];
        let errors = vec![RecordError {
            line: 2,
            field: "image".into(),
            reason: "corrupt".into(),
        }];
        let named = name_files(&errors, &files);
        assert_eq!(named[0].reason, "p/b.png: corrupt");
    }
}
