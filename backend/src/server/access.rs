//! Who may call the server. `kn serve` listens on loopback by default, but any
//! web page the user visits can send requests to `127.0.0.1`: a form or a
//! `fetch` with `text/plain` needs no CORS preflight, and DNS rebinding lets a
//! page read the answers too. So, for every request:
//!
//! * the `Host` header must be one this server answers to (its bound address,
//!   `localhost`, or the `--public-url`), which defeats DNS rebinding;
//! * a state-changing request (POST, PUT, PATCH, DELETE) must not come from
//!   another site (`Origin` and `Sec-Fetch-Site`), and one with a body must be
//!   `application/json`, which a cross-site form cannot send without a
//!   preflight that we never grant;
//! * with a token (required when listening beyond loopback), every route but
//!   the static files and `/api/health` needs `Authorization: Bearer <token>`
//!   or the `kn_token` cookie. Opening `/?token=<token>` in a browser sets the
//!   cookie (HttpOnly, SameSite=Strict) and redirects to the bare address.

use super::{ApiFail, AppState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The access policy.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `Host` values accepted, lowercase `host[:port]`; empty accepts any
    /// (in-process tests, which send none).
    pub hosts: Vec<String>,
    /// The token every API route but `/api/health` requires, if any.
    pub token: Option<String>,
}

const COOKIE: &str = "kn_token";

impl Access {
    /// The policy of a server bound to `local`: its address and `localhost`
    /// (for loopback), plus the host of `public_url`.
    pub fn for_address(
        local: SocketAddr,
        public_url: Option<&str>,
        token: Option<String>,
    ) -> Result<Self, String> {
        let port = local.port();
        let mut hosts = vec![authority(&local.ip().to_string(), port)];
        if local.ip().is_loopback() || local.ip().is_unspecified() {
            hosts.push(authority("localhost", port));
            hosts.push(authority("127.0.0.1", port));
            hosts.push(authority("::1", port));
        }
        if let Some(url) = public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("--public-url `{url}` must start with http:// or https://")
                })?;
            let auth = rest.split('/').next().unwrap_or_default().to_lowercase();
            if auth.is_empty() {
                return Err(format!("--public-url `{url}` has no host"));
            }
            hosts.push(auth);
        }
        if let Some(t) = &token {
            if t.len() < 16 {
                return Err(
                    "--token must be at least 16 characters (e.g. `openssl rand -hex 16`)".into(),
                );
            }
        }
        Ok(Access { hosts, token })
    }
}

/// `host:port` as a `Host` header spells it (IPv6 in brackets, port 80 implied).
pub fn authority(host: &str, port: u16) -> String {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 80 {
        h
    } else {
        format!("{h}:{port}")
    }
}

fn forbidden(code: &str, message: impl Into<String>) -> Response {
    ApiFail::new(StatusCode::FORBIDDEN, code, message).into_response()
}

/// Equal strings, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn has_token(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim(), token));
    bearer || cookie(headers, COOKIE).is_some_and(|t| same(t, token))
}

/// The authority (`host[:port]`) of an `Origin` header value.
fn origin_authority(origin: &str) -> Option<String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    Some(rest.trim_end_matches('/').to_lowercase())
}

/// The middleware.
pub async fn check(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let access = &st.access;
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_lowercase);
    if !access.hosts.is_empty() {
        match &host {
            Some(h) if access.hosts.iter().any(|a| a == h) => {}
            _ => {
                return forbidden(
                    "bad_host",
                    format!(
                        "this server answers to {} only (a guard against DNS rebinding); to reach it under another name, start it with --public-url",
                        access.hosts.join(", ")
                    ),
                )
            }
        }
    }
    let path = req.uri().path().to_string();
    let api = path.starts_with("/api/") || path == "/api";
    if let Some(token) = &access.token {
        if !api && req.method() == Method::GET {
            if let Some(given) = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
            {
                if same(given, token) {
                    // Trade the token in the address for a cookie, and drop it
                    // from the address (and from the browser's history).
                    let mut r =
                        (StatusCode::SEE_OTHER, [(header::LOCATION, path.clone())]).into_response();
                    if let Ok(v) = HeaderValue::from_str(&format!(
                        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                    )) {
                        r.headers_mut().insert(header::SET_COOKIE, v);
                    }
                    return r;
                }
            }
        }
        if api && path != "/api/health" && !has_token(headers, token) {
            return ApiFail::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs its token: open the address `kn serve` printed (it ends in ?token=…), or send `Authorization: Bearer <token>`",
            )
            .into_response();
        }
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            if !matches!(site, "same-origin" | "none") {
                return forbidden(
                    "cross_origin",
                    format!("requests from other sites are refused (Sec-Fetch-Site: {site})"),
                );
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let ok = origin_authority(origin).is_some_and(|o| {
                if access.hosts.is_empty() {
                    host.as_deref() == Some(o.as_str())
                } else {
                    access.hosts.contains(&o)
                }
            });
            if !ok {
                return forbidden(
                    "cross_origin",
                    format!(
                        "requests from other origins are refused (Origin: {})",
                        kn_shared::clip(origin)
                    ),
                );
            }
        }
        if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return ApiFail::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with `Content-Type: application/json`",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_a_loopback_server() {
        let a = Access::for_address("127.0.0.1:8080".parse().unwrap(), None, None).unwrap();
        assert!(a.hosts.contains(&"localhost:8080".to_string()));
        assert!(a.hosts.contains(&"127.0.0.1:8080".to_string()));
        assert!(a.hosts.contains(&"[::1]:8080".to_string()));
        let b = Access::for_address(
            "0.0.0.0:80".parse().unwrap(),
            Some("https://kn.lab.example/studio"),
            Some("0123456789abcdef".into()),
        )
        .unwrap();
        assert!(b.hosts.contains(&"kn.lab.example".to_string()));
        assert!(b.hosts.contains(&"localhost".to_string()));
        assert!(
            Access::for_address("0.0.0.0:80".parse().unwrap(), None, Some("short".into())).is_err()
        );
        assert!(
            Access::for_address("0.0.0.0:80".parse().unwrap(), Some("kn.example"), None).is_err()
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kn_token=secret"),
        );
        assert!(has_token(&h, "secret"));
        assert!(!has_token(&h, "secre"));
    }
}
