//! `ApiError`: every way a request can fail, and the response each gets.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Why a request failed. Each variant maps to one status code and a JSON
/// body `{"error": ...}`; a bad parameter also names the parameter and what
/// was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: a query parameter is unknown, missing or malformed.
    BadParameter {
        /// The parameter's name.
        parameter: String,
        /// What was wrong.
        error: String,
        /// What would have been accepted.
        expected: String,
    },
    /// 401: the endpoint has a token and the request did not carry it.
    Unauthorized,
    /// 403: a browser asked for a state change from another origin.
    Forbidden(String),
    /// 404: no such route, or no such snapshot.
    NotFound(String),
    /// 405: the route exists but not for this method.
    MethodNotAllowed,
    /// 421: the request names a host this endpoint does not answer to
    /// (see [`super::EndpointConfig::allow_host`]).
    MisdirectedRequest(String),
    /// 503: what was asked needs something this process does not have
    /// (jemalloc statistics when jemalloc is not the allocator).
    Unavailable(String),
    /// 500: something failed inside; the details go to stderr, not the client.
    Internal(String),
}

impl ApiError {
    /// A 400 for `parameter`.
    pub fn bad_parameter(
        parameter: impl Into<String>,
        error: impl Into<String>,
        expected: impl Into<String>,
    ) -> ApiError {
        ApiError::BadParameter {
            parameter: parameter.into(),
            error: error.into(),
            expected: expected.into(),
        }
    }

    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadParameter {
                parameter,
                error,
                expected,
            } => write!(f, "parameter {parameter}: {error} (expected {expected})"),
            ApiError::Unauthorized => f.write_str("missing or wrong bearer token"),
            ApiError::Forbidden(why) => write!(f, "forbidden: {why}"),
            ApiError::NotFound(what) => write!(f, "not found: {what}"),
            ApiError::MisdirectedRequest(why) => write!(f, "misdirected request: {why}"),
            ApiError::MethodNotAllowed => f.write_str("method not allowed"),
            ApiError::Unavailable(why) => write!(f, "unavailable: {why}"),
            ApiError::Internal(detail) => write!(f, "internal error: {detail}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::BadParameter {
                parameter,
                error,
                expected,
            } => Body {
                error,
                parameter: Some(parameter),
                expected: Some(expected),
            },
            ApiError::Unauthorized => Body {
                error:
                    "missing or wrong bearer token: send `Authorization: Bearer <MEMPROF_TOKEN>`",
                parameter: None,
                expected: None,
            },
            ApiError::Forbidden(what)
            | ApiError::NotFound(what)
            | ApiError::MisdirectedRequest(what) => Body {
                error: what,
                parameter: None,
                expected: None,
            },
            ApiError::MethodNotAllowed => Body {
                error: "method not allowed on this route",
                parameter: None,
                expected: None,
            },
            ApiError::Unavailable(why) => Body {
                error: why,
                parameter: None,
                expected: None,
            },
            ApiError::Internal(detail) => {
                eprintln!("memprof: http: {detail}");
                Body {
                    error: "internal error (details on the server's stderr)",
                    parameter: None,
                    expected: None,
                }
            }
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"memprof\""),
            );
        }
        response
    }
}
