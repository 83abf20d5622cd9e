//! The little HTTP the web front speaks (pure): reading a request's head,
//! deciding what it asks for, whether a WebSocket upgrade may come from
//! where it says it comes from, and writing the responses.

use tungstenite::handshake::derive_accept_key;

/// The longest request head read; a longer one is refused.
pub const MAX_HEAD: usize = 8 * 1024;
/// Where the page's WebSocket connects.
pub const CHAT_PATH: &str = "/chat";

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The page.
    Page,
    /// The chat, over a WebSocket: the key to answer with.
    Chat {
        /// `Sec-WebSocket-Key`.
        key: String,
    },
    /// A refusal: status and why.
    Refused(u16, String),
}

/// A request head, as far as the front needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    method: String,
    path: String,
    host: Option<String>,
    origin: Option<String>,
    upgrade: Option<String>,
    connection: Option<String>,
    key: Option<String>,
    version: Option<String>,
}

/// Reads a request head from `buf`: the head and the bytes it took, or
/// `None` while it is incomplete.
///
/// # Errors
/// What is wrong with a head that is not HTTP, or too long.
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(buf).map_err(|e| format!("not an HTTP request ({e})"))?;
    let used = match parsed {
        httparse::Status::Complete(used) => used,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err("request head too long".to_owned()),
        httparse::Status::Partial => return Ok(None),
    };
    let mut head = Head {
        method: request.method.unwrap_or_default().to_owned(),
        path: request.path.unwrap_or_default().to_owned(),
        ..Head::default()
    };
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value).trim().to_owned();
        let slot = match header.name.to_ascii_lowercase().as_str() {
            "host" => &mut head.host,
            "origin" => &mut head.origin,
            "upgrade" => &mut head.upgrade,
            "connection" => &mut head.connection,
            "sec-websocket-key" => &mut head.key,
            "sec-websocket-version" => &mut head.version,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(Some((head, used)))
}

/// What the request asks for, given the origins allowed besides the
/// page's own (see [`origin_allowed`]).
pub fn route(head: &Head, origins: &[String]) -> Route {
    let path = head.path.split('?').next().unwrap_or_default();
    if head.method != "GET" && head.method != "HEAD" {
        return Route::Refused(405, "only GET is served here".to_owned());
    }
    match path {
        "/" | "/index.html" => Route::Page,
        CHAT_PATH => {
            let has = |value: &Option<String>, word: &str| {
                value.as_deref().is_some_and(|v| v.split(',').any(|w| w.trim().eq_ignore_ascii_case(word)))
            };
            if !has(&head.upgrade, "websocket") || !has(&head.connection, "upgrade") {
                return Route::Refused(426, "this is the chat's WebSocket: connect with one".to_owned());
            }
            if head.version.as_deref() != Some("13") {
                return Route::Refused(426, "WebSocket version 13 only".to_owned());
            }
            let Some(key) = head.key.clone() else {
                return Route::Refused(400, "no Sec-WebSocket-Key".to_owned());
            };
            let host = head.host.as_deref().unwrap_or_default();
            match &head.origin {
                Some(origin) if !origin_allowed(origin, host, origins) => Route::Refused(
                    403,
                    format!("a page from {origin} may not use this chat (see chat serve --http-origin)"),
                ),
                _ => Route::Chat { key },
            }
        }
        _ => Route::Refused(404, "nothing here; the chat is at /".to_owned()),
    }
}

/// Whether a page from `origin` may open the chat's WebSocket on `host`.
/// Browsers always say where a page comes from; a WebSocket is not held
/// to the same-origin policy, so the server must check (cross-site
/// WebSocket hijacking). Allowed: origins listed (`*` lists all), and the
/// page's own origin when the host is an IP address or `localhost`. A
/// name other than those could be an attacker's domain that resolves to
/// this machine (DNS rebinding), so a chat served under a name needs that
/// name listed.
pub fn origin_allowed(origin: &str, host: &str, origins: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if origins.iter().any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    if !own.is_some_and(|own| own.eq_ignore_ascii_case(host)) {
        return false;
    }
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// A whole response: status, extra headers, body (left out for `HEAD`).
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A refusal with its reason as plain text.
pub fn refusal(status: u16, why: &str) -> Vec<u8> {
    let body = format!("{why}\n");
    response(status, &[("Content-Type", "text/plain; charset=utf-8")], body.as_bytes(), false)
}

/// The answer that turns the connection into a WebSocket.
pub fn upgrade(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

impl Head {
    /// Whether only the head of the response is wanted.
    pub fn head_only(&self) -> bool {
        self.method == "HEAD"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap().unwrap().0
    }

    const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:5580\r\nUpgrade: websocket\r\n\
                           Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                           Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn requests_are_routed() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert!(parse(&[b'a'; MAX_HEAD]).is_err());
        assert_eq!(route(&head("GET / HTTP/1.1\r\n\r\n"), &[]), Route::Page);
        assert!(matches!(route(&head("POST / HTTP/1.1\r\n\r\n"), &[]), Route::Refused(405, _)));
        assert!(matches!(route(&head("GET /x HTTP/1.1\r\n\r\n"), &[]), Route::Refused(404, _)));
        assert!(matches!(route(&head("GET /chat HTTP/1.1\r\n\r\n"), &[]), Route::Refused(426, _)));
        let key = "dGhlIHNhbXBsZSBub25jZQ==".to_owned();
        assert_eq!(route(&head(&format!("{UPGRADE}\r\n")), &[]), Route::Chat { key: key.clone() });
        let own = format!("{UPGRADE}Origin: http://127.0.0.1:5580\r\n\r\n");
        assert_eq!(route(&head(&own), &[]), Route::Chat { key });
        let evil = format!("{UPGRADE}Origin: https://evil.example\r\n\r\n");
        assert!(matches!(route(&head(&evil), &[]), Route::Refused(403, _)));
        assert!(matches!(route(&head(&evil), &["https://evil.example".to_owned()]), Route::Chat { .. }));
        // RFC 6455's example key.
        assert!(
            String::from_utf8(upgrade("dGhlIHNhbXBsZSBub25jZQ=="))
                .unwrap()
                .contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }

    #[test]
    fn only_the_pages_own_origin_on_an_address_or_localhost_is_allowed() {
        assert!(origin_allowed("http://localhost:5580", "localhost:5580", &[]));
        assert!(origin_allowed("http://[::1]:5580", "[::1]:5580", &[]));
        assert!(!origin_allowed("http://localhost:5580", "127.0.0.1:5580", &[]));
        // DNS rebinding: an attacker's name that resolves to this machine.
        assert!(!origin_allowed("http://rebind.example:5580", "rebind.example:5580", &[]));
        assert!(origin_allowed(
            "https://chat.example.org",
            "chat.example.org",
            &["https://chat.example.org/".to_owned()]
        ));
        assert!(origin_allowed("null", "x", &["*".to_owned()]));
        assert!(!origin_allowed("null", "127.0.0.1:1", &[]));
    }
}
