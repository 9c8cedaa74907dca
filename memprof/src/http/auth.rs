//! Bearer-token check, run before every route (and the 404 fallback, so an
//! unauthenticated client cannot map the routes) except the page itself:
//! the page is static, holds no data, and asks the person for the token
//! that its own requests then carry (`assets/page.js`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

/// The token requests must carry.
#[derive(Clone)]
pub(crate) enum Token {
    /// None: every request is served.
    None,
    /// Every request must carry `Authorization: Bearer <this>`.
    Required(Arc<str>),
    /// A token was given that no request could carry (blank, or with
    /// characters a header drops or cannot hold). `serve` refuses to start
    /// with it; a router built with it refuses every request.
    Unusable(&'static str),
}

impl Token {
    /// Checks a configured token.
    pub(crate) fn parse(token: &str) -> Token {
        if token.is_empty() {
            Token::Unusable("it is empty")
        } else if token.trim().is_empty() {
            Token::Unusable("it is only whitespace")
        } else if token.trim() != token {
            Token::Unusable(
                "it begins or ends with whitespace, which HTTP drops from a header's value",
            )
        } else if !token.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            Token::Unusable(
                "it holds a control or non-ASCII character; a token must be printable ASCII",
            )
        } else {
            Token::Required(Arc::from(token))
        }
    }
}

pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let expected = match &state.token {
        Token::None => return next.run(request).await,
        _ if is_page(&request) => return next.run(request).await,
        Token::Required(token) => token,
        Token::Unusable(_) => return ApiError::Unauthorized.into_response(),
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer_credentials(v.as_bytes()));
    match given {
        Some(given) if constant_time_eq(given, expected.as_bytes()) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// `GET /` (or `HEAD`) where the routes are mounted: the page, which
/// reads nothing from the process.
fn is_page(request: &Request) -> bool {
    (request.method() == Method::GET || request.method() == Method::HEAD)
        && request.uri().path() == "/"
}

/// The token in an `Authorization` value `Bearer <token>`: the scheme is
/// case-insensitive and one or more spaces follow it (RFC 9110, 11.1 and
/// 11.4). `None` for another scheme or no token.
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether `given` is `expected`, in a time that depends on neither their
/// contents nor how much of them agrees: every byte of `expected` is
/// compared (against a 0 past the end of `given`), the differences are
/// OR-ed together without a branch, and `black_box` keeps the compiler from
/// turning the loop into an early exit. The time depends only on the
/// length of `expected`, which is the same for every request.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(g ^ e));
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret2", b"secret"));
        assert!(!constant_time_eq(b"secret\0", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn reads_the_bearer_scheme_in_any_case() {
        assert_eq!(bearer_credentials(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"BEARER   abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"Basic abc"), None);
        assert_eq!(bearer_credentials(b"Bearer"), None);
        assert_eq!(bearer_credentials(b"Bearer "), None);
        assert_eq!(bearer_credentials(b"Bearerabc"), None);
    }

    #[test]
    fn refuses_tokens_no_request_could_carry() {
        let reason = |t: &str| match Token::parse(t) {
            Token::Unusable(reason) => Some(reason),
            _ => None,
        };
        assert!(reason("").unwrap().contains("empty"));
        assert!(reason("  \t").unwrap().contains("whitespace"));
        assert!(reason("secret\n").unwrap().contains("whitespace"));
        assert!(reason("sec\u{7}ret").unwrap().contains("control"));
        assert!(reason("sécret").unwrap().contains("non-ASCII"));
        assert_eq!(reason("s3cr3t-._~+/="), None);
    }
}
