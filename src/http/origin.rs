//! The `Origin` check on `/ws/<id>`, the `Host` check on every request, and the "local request" rule
//! (docs/deployment.md "Security").

use std::net::SocketAddr;

use axum::http::HeaderMap;

/// Whether a WebSocket request's `Origin` is allowed: absent (not a browser), the same host and port as
/// `Host` (default ports implied), or listed exactly in `--allowed-origin`. `null` only when listed.
/// More than one `Origin` header is refused: browsers never send two, and checking only the first let
/// a second one through (security review L7).
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let mut origins = headers.get_all("origin").iter();
    let Some(origin) = origins.next() else { return true };
    if origins.next().is_some() {
        return false;
    }
    let Ok(origin) = origin.to_str() else { return false };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    if origin == "null" {
        return false;
    }
    let Some(host) = headers.get("host").and_then(|h| h.to_str().ok()) else { return false };
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return false,
    };
    match (host_port(rest, default_port), host_port(host, default_port)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Whether the `Host` header names this gateway (DNS-rebinding protection, security review L7): an IP
/// literal (a rebinding page always has a name of its own, and any address that reaches the listener
/// is one of ours), `localhost` or a `*.localhost` name (browsers resolve those to loopback
/// themselves), or a name listed in `--allowed-host` (lowercase; the port is not compared). A request
/// without `Host` is not from a browser and passes; more than one `Host` header does not.
pub fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let mut hosts = headers.get_all("host").iter();
    let Some(host) = hosts.next() else { return true };
    if hosts.next().is_some() {
        return false;
    }
    let Some((name, _)) = host.to_str().ok().and_then(|h| host_port(h.trim(), 80)) else { return false };
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let name = name.strip_suffix('.').unwrap_or(&name);
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.iter().any(|a| a.strip_suffix('.').unwrap_or(a) == name)
}

/// `host[:port]` → (lowercase host, port), default port implied.
fn host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() || s.contains('/') {
        return None;
    }
    // IPv6 literal: [::1]:8000
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (s.to_string(), default_port),
        }
    };
    Some((host.to_ascii_lowercase(), port))
}

/// A local request: loopback peer and none of `Origin`, `Forwarded`, `X-Forwarded-For`, `X-Real-IP`.
pub fn is_local(peer: &SocketAddr, headers: &HeaderMap) -> bool {
    let loopback = match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    loopback && ["origin", "forwarded", "x-forwarded-for", "x-real-ip"].iter().all(|h| !headers.contains_key(*h))
}

/// Local for the debug pages: like [`is_local`], except that an `Origin` naming the gateway itself (the
/// page refreshing itself) is tolerated.
pub fn is_local_debug(peer: &SocketAddr, headers: &HeaderMap) -> bool {
    if !headers.contains_key("origin") {
        return is_local(peer, headers);
    }
    let mut without = headers.clone();
    without.remove("origin");
    origin_allowed(headers, &[]) && is_local(peer, &without)
}

/// Whether the request came through an https proxy (for the cookie's `Secure` flag).
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    let xfp = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    let fwd = headers.get("forwarded").and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split([';', ',']).any(|part| part.trim().to_ascii_lowercase().replace('"', "") == "proto=https")
    });
    xfp || fwd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_rules() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8000")]), &none));
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8000"), ("origin", "http://127.0.0.1:8000")]), &none));
        assert!(origin_allowed(&headers(&[("host", "Example.com"), ("origin", "http://example.COM:80")]), &none));
        assert!(origin_allowed(&headers(&[("host", "example.com:443"), ("origin", "https://example.com")]), &none));
        assert!(origin_allowed(&headers(&[("host", "example.com"), ("origin", "https://example.com")]), &none));
        assert!(!origin_allowed(&headers(&[("host", "example.com:8443"), ("origin", "https://example.com")]), &none));
        assert!(!origin_allowed(&headers(&[("host", "127.0.0.1:8000"), ("origin", "http://evil.example")]), &none));
        assert!(!origin_allowed(&headers(&[("host", "127.0.0.1:8000"), ("origin", "http://127.0.0.1:8001")]), &none));
        assert!(!origin_allowed(&headers(&[("host", "127.0.0.1:8000"), ("origin", "null")]), &none));
        assert!(origin_allowed(&headers(&[("host", "[::1]:8000"), ("origin", "http://[::1]:8000")]), &none));
        let allowed = vec!["https://app.example".to_string(), "null".to_string()];
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8000"), ("origin", "https://app.example")]), &allowed));
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8000"), ("origin", "null")]), &allowed));
        assert!(!origin_allowed(
            &headers(&[("host", "127.0.0.1:8000"), ("origin", "https://app.example:444")]),
            &allowed
        ));
        // Every Origin header counts: two are refused, even if the first is fine.
        let mut two = headers(&[("host", "127.0.0.1:8000"), ("origin", "http://127.0.0.1:8000")]);
        two.append("origin", "http://evil.example".parse().unwrap());
        assert!(!origin_allowed(&two, &none));
        assert!(!is_local_debug(&"127.0.0.1:1".parse().unwrap(), &two));
    }

    #[test]
    fn host_rules() {
        let none: Vec<String> = vec![];
        let allowed = vec!["app.example".to_string()];
        for ok in ["127.0.0.1:8000", "127.0.0.1", "[::1]:8000", "[::1]", "10.1.2.3:80", "localhost:8000", "LOCALHOST"] {
            assert!(host_allowed(&headers(&[("host", ok)]), &none), "{ok}");
        }
        assert!(host_allowed(&headers(&[("host", "app.localhost:8000")]), &none));
        assert!(host_allowed(&HeaderMap::new(), &none), "no Host: not a browser");
        for bad in ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::1", "", "localhost.evil", "a b"]
        {
            assert!(!host_allowed(&headers(&[("host", bad)]), &none), "{bad}");
        }
        assert!(host_allowed(&headers(&[("host", "App.Example:8443")]), &allowed));
        assert!(host_allowed(&headers(&[("host", "app.example.")]), &allowed));
        assert!(!host_allowed(&headers(&[("host", "other.example")]), &allowed));
        let mut two = headers(&[("host", "127.0.0.1:8000")]);
        two.append("host", "evil.example".parse().unwrap());
        assert!(!host_allowed(&two, &allowed));
    }

    #[test]
    fn local_requests() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:5000".parse().unwrap();
        let far: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert!(is_local(&lo, &HeaderMap::new()));
        assert!(is_local(&lo6, &HeaderMap::new()));
        assert!(!is_local(&far, &HeaderMap::new()));
        assert!(!is_local(&lo, &headers(&[("x-forwarded-for", "1.2.3.4")])));
        assert!(!is_local(&lo, &headers(&[("origin", "http://x")])));
    }

    #[test]
    fn https_proxies() {
        assert!(forwarded_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(forwarded_https(&headers(&[("forwarded", "for=1.2.3.4;proto=https")])));
        assert!(!forwarded_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!forwarded_https(&HeaderMap::new()));
    }
}
