//! The web app's files, compiled into the binary: no CDN, no external font, nothing fetched
//! from outside the cluster. Each reply carries an ETag so browsers revalidate cheaply, and a
//! content security policy that allows only this origin.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// (path under `/assets/`, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "lib/api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/api.js"),
    ),
    (
        "lib/outbox.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/outbox.js"),
    ),
    (
        "lib/spans.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/spans.js"),
    ),
    (
        "lib/views.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/views.js"),
    ),
    (
        "lib/chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/chart.js"),
    ),
    (
        "lib/editor.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/editor.js"),
    ),
    (
        "lib/boxes.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/boxes.js"),
    ),
    (
        "lib/image.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/lib/image.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("../assets/index.html");

const CSP: &str =
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn etag(bytes: &[u8]) -> String {
    // FNV-1a: a stable fingerprint of the embedded bytes, enough to tell versions apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn serve(content_type: &'static str, bytes: &'static [u8], headers: &HeaderMap) -> Response {
    let tag = etag(bytes);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut reply = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
    };
    let h = reply.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    reply
}

/// The single page (every app route renders it; the script reads the location).
pub async fn index(headers: HeaderMap) -> Response {
    serve("text/html; charset=utf-8", INDEX, &headers)
}

/// A file under `/assets/`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, bytes)) => serve(content_type, bytes, &headers),
        None => (StatusCode::NOT_FOUND, format!("no asset {path:?}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_referenced_by_a_real_file_and_tags_differ() {
        let mut tags: Vec<String> = FILES.iter().map(|(_, _, b)| etag(b)).collect();
        assert!(FILES.iter().all(|(_, _, b)| !b.is_empty()));
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), FILES.len());
    }

    #[test]
    fn the_page_loads_nothing_from_outside() {
        let page = std::str::from_utf8(INDEX).unwrap();
        for (_, _, bytes) in FILES {
            // The SVG namespace is a name, not a URL anything fetches.
            let text = String::from_utf8_lossy(bytes).replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "external URL in an asset"
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
