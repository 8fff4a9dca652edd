//! Who may open `/backend` (PROTOCOL.md B2): with a token configured, every request needs
//! `Authorization: Bearer <token>` (compared in constant time; the scheme name is case-insensitive,
//! RFC 7235 §2.1); without one, only local requests.

use std::net::SocketAddr;

use axum::http::HeaderMap;

use crate::http::origin::is_local;

/// Why a backend was refused, for the status code and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Missing or wrong token: 401 with `WWW-Authenticate: Bearer`.
    Token,
    /// No token configured and the request is not local: 403.
    NotLocal,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Token => "token",
            Refusal::NotLocal => "not-local",
        }
    }
}

/// Checks a `/backend` request.
pub fn check(token: Option<&str>, peer: &SocketAddr, headers: &HeaderMap) -> Result<(), Refusal> {
    match token {
        Some(expected) => {
            let given = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_credentials)
                .unwrap_or("");
            if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(Refusal::Token)
            }
        }
        None if is_local(peer, headers) => Ok(()),
        None => Err(Refusal::NotLocal),
    }
}

/// The credentials of a `Bearer` authorization value: the scheme in any case (security review L8), one or
/// more spaces, then the token.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim_start_matches(' '))
}

/// Byte-for-byte equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0
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
    fn token_and_locality_rules() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let token = Some("0123456789abcdef");
        assert_eq!(check(None, &local, &headers(&[])), Ok(()));
        assert_eq!(check(None, &remote, &headers(&[])), Err(Refusal::NotLocal));
        assert_eq!(check(None, &local, &headers(&[("origin", "http://x")])), Err(Refusal::NotLocal));
        assert_eq!(check(None, &local, &headers(&[("x-forwarded-for", "1.2.3.4")])), Err(Refusal::NotLocal));
        assert_eq!(check(token, &local, &headers(&[])), Err(Refusal::Token));
        assert_eq!(
            check(token, &local, &headers(&[("authorization", "Bearer 0123456789abcdeX")])),
            Err(Refusal::Token)
        );
        assert_eq!(check(token, &local, &headers(&[("authorization", "Bearer 0123456789abcde")])), Err(Refusal::Token));
        assert_eq!(check(token, &remote, &headers(&[("authorization", "Bearer 0123456789abcdef")])), Ok(()));
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme} 0123456789abcdef");
            let mut h = HeaderMap::new();
            h.insert("authorization", value.parse().unwrap());
            assert_eq!(check(token, &remote, &h), Ok(()), "{scheme}");
        }
        assert_eq!(check(token, &remote, &headers(&[("authorization", "Bearer  0123456789abcdef")])), Ok(()));
        assert_eq!(
            check(token, &remote, &headers(&[("authorization", "Basic 0123456789abcdef")])),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(token, &remote, &headers(&[("authorization", "Bearer0123456789abcdef")])),
            Err(Refusal::Token)
        );
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }
}
