//! Images in records: an `image` field holds either the image inline as a data URI or the path
//! of a file in the coordinator's image store. Inline images are decoded here, in full, so a
//! truncated or corrupt image is refused at import with its line; files are read by the
//! coordinator and checked by the same [`inspect`].

use std::io::Cursor;

use base64::Engine;
use sha2::{Digest, Sha256};

/// What an image's bytes turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// SHA-256 of the bytes, 64 lowercase hex digits: where the image is stored.
    pub digest: String,
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`, from the bytes themselves.
    pub media_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A checked image and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub info: ImageInfo,
    pub bytes: Vec<u8>,
}

/// The `image` field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageField {
    /// Given inline as a data URI, already checked.
    Inline(Image),
    /// A relative path in the coordinator's image store, not yet read.
    File(String),
}

/// Widest and tallest image accepted, whatever its byte size: a small file can claim a huge
/// canvas, and decoding it would take that much memory.
pub const MAX_SIDE: u32 = 16_384;

/// What the record holds in place of an inline image: its digest, so the record stays small and
/// the bytes are stored once.
pub fn stored_reference(digest: &str) -> String {
    format!("sha256:{digest}")
}

/// The image as a data URI, the way exports give an inline image back.
pub fn data_uri(media_type: &str, bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("data:{media_type};base64,{b64}")
}

/// Checks an image's bytes: at most `max_bytes`, a PNG, JPEG, GIF or WebP that decodes in full,
/// and at most [`MAX_SIDE`] pixels a side.
pub fn inspect(bytes: &[u8], max_bytes: usize) -> Result<Image, String> {
    if bytes.len() > max_bytes {
        return Err(format!(
            "the image is {} bytes, over the image size limit of {max_bytes} bytes",
            bytes.len()
        ));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| "not an image: the bytes are not PNG, JPEG, GIF or WebP".to_string())?;
    let media_type = match format {
        image::ImageFormat::Png => "image/png",
        image::ImageFormat::Jpeg => "image/jpeg",
        image::ImageFormat::Gif => "image/gif",
        image::ImageFormat::WebP => "image/webp",
        other => {
            return Err(format!(
                "{other:?} images are not accepted; use PNG, JPEG, GIF or WebP"
            ))
        }
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| format!("the {media_type} image is corrupt or truncated: {e}"))?;
    Ok(Image {
        info: ImageInfo {
            digest: hex(&Sha256::digest(bytes)),
            media_type,
            width: decoded.width(),
            height: decoded.height(),
            bytes: bytes.len() as u64,
        },
        bytes: bytes.to_vec(),
    })
}

/// Reads an `image` field's string: a data URI is decoded and checked, a path is checked for
/// shape only (relative, inside the store). Addresses of other machines are refused: images
/// are never fetched from the network.
pub fn parse_field(value: &str, max_bytes: usize) -> Result<ImageField, String> {
    if let Some(rest) = value.strip_prefix("data:") {
        let Some((head, payload)) = rest.split_once(',') else {
            return Err("the data URI has no `,` before its data".into());
        };
        if !head.ends_with(";base64") {
            return Err("the data URI is not base64 (`data:image/...;base64,...`)".into());
        }
        // Base64 takes four characters for three bytes: refuse an oversized image before
        // decoding it.
        if payload.len() / 4 * 3 > max_bytes + 3 {
            return Err(format!(
                "the image is about {} bytes, over the image size limit of {max_bytes} bytes",
                payload.len() / 4 * 3
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.trim_end())
            .map_err(|e| format!("the data URI's base64 is malformed: {e}"))?;
        return inspect(&bytes, max_bytes).map(ImageField::Inline);
    }
    check_path(value).map(|()| ImageField::File(value.to_string()))
}

/// A path in the image store: relative, made of plain names (no `..`, no drive or scheme).
pub fn check_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("is empty".into());
    }
    if path.contains("://") || path.starts_with("//") {
        return Err(format!(
            "`{path}` is a network address; images are never fetched from outside, so give a data URI or a path in the coordinator's image store"
        ));
    }
    if path.starts_with('/') || path.starts_with('\\') || path.contains(':') {
        return Err(format!(
            "`{path}` is not a relative path in the coordinator's image store"
        ));
    }
    if path
        .split(['/', '\\'])
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "`{path}` has an empty, `.` or `..` part; give a plain path inside the image store"
        ));
    }
    Ok(())
}

/// Identity of an image example: xxh3-128 of the image's digest and the caption, so the same
/// image with the same caption is a duplicate wherever its bytes came from.
pub fn input_hash(digest: &str, text: &str) -> u128 {
    crate::input_hash(&format!("image:sha256:{digest}\n{text}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PNG of one colour (it compresses to a few dozen bytes), for tests and examples.
pub fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

/// A PNG of deterministic noise (it barely compresses), for tests that need an image of a
/// known, sizeable byte count.
pub fn noise_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let [a, b, c, ..] = (state >> 24).to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_is_measured_and_addressed_by_content() {
        let png = solid_png(7, 5, [200, 10, 10]);
        let img = inspect(&png, 1 << 20).unwrap();
        assert_eq!((img.info.width, img.info.height), (7, 5));
        assert_eq!(img.info.media_type, "image/png");
        assert_eq!(img.info.digest.len(), 64);
        assert_eq!(img.info.bytes, png.len() as u64);
        let again = inspect(&png, 1 << 20).unwrap();
        assert_eq!(again.info.digest, img.info.digest);
    }

    #[test]
    fn data_uris_round_trip_and_bad_ones_say_why() {
        let png = solid_png(3, 3, [0, 0, 255]);
        let uri = data_uri("image/png", &png);
        let ImageField::Inline(img) = parse_field(&uri, 1 << 20).unwrap() else {
            panic!("a data URI is inline");
        };
        assert_eq!(img.bytes, png);
        let truncated = data_uri("image/png", &png[..png.len() - 20]);
        let err = parse_field(&truncated, 1 << 20).unwrap_err();
        assert!(err.contains("corrupt or truncated"), "{err}");
        let err = parse_field(&data_uri("image/png", b"hello there"), 1 << 20).unwrap_err();
        assert!(err.contains("not an image"), "{err}");
        let err = parse_field(&uri, 20).unwrap_err();
        assert!(
            err.contains("over the image size limit of 20 bytes"),
            "{err}"
        );
        let err = parse_field("data:image/png;base64,@@@@", 1 << 20).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        let err = parse_field("data:image/png,abc", 1 << 20).unwrap_err();
        assert!(err.contains("not base64"), "{err}");
    }

    #[test]
    fn paths_stay_inside_the_store_and_urls_are_refused() {
        assert_eq!(
            parse_field("cats/1.png", 10).unwrap(),
            ImageField::File("cats/1.png".into())
        );
        for bad in [
            "https://example.com/a.png",
            "//host/a.png",
            "/etc/passwd",
            "../secret.png",
            "a/../../b.png",
            "C:/x.png",
            "a//b.png",
            " ",
        ] {
            assert!(parse_field(bad, 10).is_err(), "{bad} was accepted");
        }
        let err = parse_field("http://x/a.png", 10).unwrap_err();
        assert!(err.contains("never fetched"), "{err}");
    }
}
