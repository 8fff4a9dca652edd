//! Static files from the site's `html/` (docs/deployment.md "HTTP routes"): safe path resolution, a fixed content-type
//! table, strong ETags with `If-None-Match`, no directory listings.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};

/// Content type by extension; unknown extensions are `application/octet-stream`.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Resolves a URL path inside `root`, refusing anything that could escape it or name hidden files.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(url_path).decode_utf8().ok()?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut path = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') {
            return None;
        }
        path.push(segment);
    }
    // Symlinks must resolve inside html/.
    let canonical = path.canonicalize().ok()?;
    let root = root.canonicalize().ok()?;
    (canonical.starts_with(&root) && canonical.is_file()).then_some(canonical)
}

/// A strong validator: FNV-1a over the bytes plus the length.
pub fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{:x}\"", bytes.len())
}

/// Serves bytes with the static-file headers, answering `If-None-Match` with 304.
pub fn respond(bytes: Vec<u8>, content_type: &str, request: &HeaderMap, head: bool) -> Response<Body> {
    let tag = etag(&bytes);
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut builder = Response::builder()
        .header(header::ETAG, &tag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if matches {
        return builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()).expect("valid response");
    }
    if content_type.starts_with("text/html") {
        builder = super::html_security_headers(builder);
    }
    builder = builder
        .header(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("static content types are valid"))
        .header(header::CONTENT_LENGTH, bytes.len());
    let body = if head { Body::empty() } else { Body::from(bytes) };
    builder.status(StatusCode::OK).body(body).expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_stays_inside_the_root() {
        let root = std::env::temp_dir().join(format!("uigw-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("html/sub")).unwrap();
        std::fs::write(root.join("html/sub/a.css"), "x").unwrap();
        std::fs::write(root.join("secret.txt"), "s").unwrap();
        std::fs::write(root.join("html/.hidden"), "h").unwrap();
        let html = root.join("html");
        assert!(resolve(&html, "/sub/a.css").is_some());
        assert!(resolve(&html, "/sub/%61.css").is_some());
        assert!(resolve(&html, "/../secret.txt").is_none());
        assert!(resolve(&html, "/%2e%2e/secret.txt").is_none());
        assert!(resolve(&html, "/.hidden").is_none());
        assert!(resolve(&html, "/sub").is_none(), "directories are not served");
        assert!(resolve(&html, "/sub\\a.css").is_none());
        assert!(resolve(&html, "/missing").is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("secret.txt"), html.join("link.txt")).unwrap();
            assert!(resolve(&html, "/link.txt").is_none(), "symlinks must stay inside html/");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn etags_and_types() {
        assert_eq!(etag(b"abc"), etag(b"abc"));
        assert_ne!(etag(b"abc"), etag(b"abd"));
        assert_eq!(content_type(Path::new("x.JS")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("x.bin")), "application/octet-stream");
    }
}
