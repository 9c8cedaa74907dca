//! Who may ask: checks run before every route against what a web page in an
//! operator's browser could make the browser do to the endpoint, and the
//! header every response carries.
//!
//! - **DNS rebinding.** A page on `attacker.example` points its own name at
//!   127.0.0.1 and then reads the endpoint as if it were its own origin. The
//!   browser still sends `Host: attacker.example`, so an endpoint that
//!   answers only to the names it is known by is out of reach: on a loopback
//!   bind, `Host` must be a loopback address, `localhost`, the bound address
//!   or a name allowed with [`super::EndpointConfig::allow_host`]; anything else gets
//!   421. Where the router is nested in someone's app, the bind is not known
//!   and the app's own names must work, so the check runs there only when
//!   names are allowed explicitly.
//! - **Cross-site requests.** Any page can send a form POST (or a no-cors
//!   fetch) to the endpoint: it cannot read the answer, but the purge or the
//!   snapshot would happen. Browsers say where a request comes from
//!   (`Origin`, `Sec-Fetch-Site`); a request that changes state (any method
//!   but GET, HEAD and OPTIONS) from another origin gets 403. Clients that
//!   are not browsers (curl, scripts, Prometheus) send neither header and
//!   pass. Reads need no such check: without CORS headers, which the
//!   endpoint never sends, another origin cannot see the answer.
//! - Every response says `X-Content-Type-Options: nosniff`, so no browser
//!   runs a JSON or text answer as a script or renders it as a page.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Which `Host` names the endpoint answers to, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Hosts {
    /// Checked where the bind is known to be loopback ([`super::serve`]);
    /// not checked where the router is nested.
    #[default]
    Automatic,
    /// Always checked: loopback names, the bound address and these
    /// (lowercase, without a port).
    Allowed(Vec<String>),
    /// Never checked.
    Any,
}

/// The checks as they apply to one router.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Whether `Host` is checked at all.
    check_hosts: bool,
    /// Names accepted besides the loopback ones.
    allowed: Vec<String>,
    /// The address [`super::serve`] bound, when it did.
    bound: Option<IpAddr>,
}

impl Guard {
    /// The checks for `hosts`, served at `bound` if known.
    pub(crate) fn new(hosts: &Hosts, bound: Option<SocketAddr>) -> Arc<Guard> {
        let bound_loopback = bound.is_some_and(|a| is_loopback_ip(a.ip()));
        let (check_hosts, allowed) = match hosts {
            Hosts::Automatic => (bound_loopback, Vec::new()),
            Hosts::Allowed(names) => (true, names.clone()),
            Hosts::Any => (false, Vec::new()),
        };
        Arc::new(Guard {
            check_hosts,
            allowed,
            bound: bound.map(|a| a.ip()),
        })
    }

    /// Whether `authority` (a `Host` value: name or address, maybe a port)
    /// names this endpoint.
    fn accepts_host(&self, authority: &str) -> bool {
        let name = host_name(authority);
        if name == "localhost" || self.allowed.contains(&name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => is_loopback_ip(ip) || self.bound == Some(ip),
            Err(_) => false,
        }
    }

    /// Why `headers` show a browser request from another origin, if they do.
    fn cross_origin(&self, headers: &HeaderMap, host: Option<&str>) -> Option<String> {
        if let Some(site) = header(headers, "sec-fetch-site") {
            if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
                return Some(format!(
                    "the browser says it comes from another origin (Sec-Fetch-Site: {site})"
                ));
            }
        }
        let origin = header(headers, ORIGIN.as_str())?;
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let own = match (authority, host) {
            (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => true,
            // A proxy that rewrites Host: the browser's origin is a name the
            // operator allowed.
            (Some(authority), _) => self.allowed.iter().any(|a| *a == host_name(authority)),
            (None, _) => false,
        };
        (!own).then(|| format!("origin {origin:?} is not this endpoint's own"))
    }
}

/// The middleware: refuses foreign hosts (421) and cross-origin state
/// changes (403), and marks every response `nosniff`.
pub(crate) async fn check(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match refusal(&guard, &request) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    };
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn refusal(guard: &Guard, request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    // HTTP/1.1 requires Host; a request in absolute form names it in the
    // target instead. Browsers always send Host.
    let host =
        header(headers, HOST.as_str()).or_else(|| request.uri().authority().map(|a| a.as_str()));
    if guard.check_hosts {
        if let Some(host) = host.filter(|h| !guard.accepts_host(h)) {
            return Some(ApiError::MisdirectedRequest(format!(
                "request for host {host:?} refused: this endpoint answers only to {}, so that \
                 a web page that points its own name at this address (DNS rebinding) cannot \
                 read it; to reach it by another name (through a proxy, say), allow the name \
                 with memprof::http::EndpointConfig::allow_host",
                guard.accepted_names()
            )));
        }
    }
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state {
        if let Some(why) = guard.cross_origin(headers, host) {
            return Some(ApiError::Forbidden(format!(
                "cross-origin {} refused: {why}; requests that change state are taken from \
                 the endpoint's own page and from clients that send no Origin (curl, scripts)",
                request.method()
            )));
        }
    }
    None
}

impl Guard {
    /// The names accepted, for an error message.
    fn accepted_names(&self) -> String {
        let mut names = vec!["127.0.0.1".to_string(), "localhost".into(), "[::1]".into()];
        if let Some(ip) = self.bound.filter(|ip| !is_loopback_ip(*ip)) {
            names.push(ip.to_string());
        }
        names.extend(self.allowed.iter().cloned());
        names.join(", ")
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The name or address of an authority (`host[:port]`, `[v6][:port]`),
/// lowercase, without a port, brackets or a trailing dot.
fn host_name(authority: &str) -> String {
    let name = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => authority,
        }
    };
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.to_canonical().is_loopback(),
    }
}

/// `name` as [`Hosts::Allowed`] keeps it: lowercase, without a port.
pub(crate) fn allowed_name(name: &str) -> String {
    host_name(name.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_without_ports() {
        assert_eq!(host_name("LocalHost:6060"), "localhost");
        assert_eq!(host_name("localhost."), "localhost");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("[::ffff:127.0.0.1]"), "::ffff:127.0.0.1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("a.example:x"), "a.example:x");
        assert_eq!(host_name(""), "");
    }

    #[test]
    fn loopback_bind_accepts_its_names_only() {
        let guard = Guard::new(&Hosts::Automatic, Some("127.0.0.1:6060".parse().unwrap()));
        assert!(guard.check_hosts);
        for ok in [
            "127.0.0.1:6060",
            "localhost",
            "[::1]:1",
            "127.9.9.9",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(guard.accepts_host(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "localhost.attacker.example",
            "0.0.0.0",
            "[::]",
            "",
            "::1",
        ] {
            assert!(!guard.accepts_host(bad), "{bad}");
        }
        let nested = Guard::new(&Hosts::Automatic, None);
        assert!(!nested.check_hosts);
        let public = Guard::new(&Hosts::Automatic, Some("0.0.0.0:6060".parse().unwrap()));
        assert!(!public.check_hosts);
        let named = Guard::new(
            &Hosts::Allowed(vec![allowed_name("Memprof.Example.com:443")]),
            Some("10.0.0.5:6060".parse().unwrap()),
        );
        assert!(named.check_hosts);
        assert!(named.accepts_host("memprof.example.com"));
        assert!(named.accepts_host("10.0.0.5:6060"));
        assert!(!named.accepts_host("10.0.0.6:6060"));
    }

    #[test]
    fn origins_other_than_the_hosts_are_cross_origin() {
        let guard = Guard::new(&Hosts::Allowed(vec!["proxy.example".into()]), None);
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let host = Some("127.0.0.1:6060");
        assert!(guard.cross_origin(&headers(&[]), host).is_none());
        assert!(guard
            .cross_origin(&headers(&[("origin", "http://127.0.0.1:6060")]), host)
            .is_none());
        assert!(guard
            .cross_origin(&headers(&[("origin", "https://proxy.example")]), host)
            .is_none());
        assert!(guard
            .cross_origin(&headers(&[("sec-fetch-site", "none")]), host)
            .is_none());
        for bad in [
            headers(&[("origin", "http://127.0.0.1:6061")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://attacker.example")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "cross-site")]),
        ] {
            assert!(guard.cross_origin(&bad, host).is_some(), "{bad:?}");
        }
    }
}
