//! The connections under [`serve`](super::serve): an accept loop running
//! hyper's HTTP/1 server on each connection, bounded so that the endpoint
//! never costs the service it lives in its descriptors or its memory.
//!
//! - At most [`EndpointConfig::max_connections`] connections are served at once.
//!   One over the cap is accepted, answered `503` (one non-blocking write,
//!   best effort) and closed at once, rather than left unaccepted in the
//!   kernel's backlog: a queued connection waits behind every connection
//!   queued before it, so a flood would hold a real client back by whole
//!   header timeouts, while a closed one learns at once to retry. Its cost
//!   is one descriptor between the accept and the close.
//! - A request head must arrive within [`EndpointConfig::header_read_timeout`].
//!   hyper starts that timer again whenever a kept-alive connection goes
//!   idle, so it is the idle timeout as well.
//! - A request head is at most [`MAX_REQUEST_HEAD`] bytes (hyper answers
//!   431 beyond), and a connection's read and write buffers at most
//!   [`MAX_BUFFER`] each. No route reads a request body.
//! - An accept that fails for want of descriptors or memory (`EMFILE`,
//!   `ENFILE`, `ENOBUFS`, `ENOMEM`) leaves the connection in the backlog
//!   and pauses the loop for [`ACCEPT_PAUSE`]: the listener stays readable,
//!   so retrying at once would spin on the error.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::EndpointConfig;

/// The largest request head (request line and headers) read.
const MAX_REQUEST_HEAD: usize = 16 << 10;

/// The most a connection buffers in each direction.
const MAX_BUFFER: usize = 64 << 10;

/// How long the accept loop waits after an accept fails for want of
/// resources, before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(500);

/// How [`serve`](super::serve) bounds its connections (not used by
/// [`router_with`](super::router_with), whose server is the app's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    pub(super) max_connections: usize,
    pub(super) header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl EndpointConfig {
    /// How many connections [`serve`](super::serve) serves at once (at
    /// least 1; 64 by default). A connection over the cap is answered 503
    /// and closed at once. Keep it well below the process's descriptor
    /// limit (`ulimit -n`): each connection holds one descriptor.
    pub fn max_connections(mut self, max: usize) -> EndpointConfig {
        self.limits.max_connections = max.max(1);
        self
    }

    /// How long [`serve`](super::serve) waits for a request's head (its
    /// line and headers), and for the next request on an idle kept-alive
    /// connection, before closing the connection (at least 100 ms; 10 s by
    /// default).
    pub fn header_read_timeout(mut self, timeout: Duration) -> EndpointConfig {
        self.limits.header_read_timeout = timeout.max(Duration::from_millis(100));
        self
    }
}

/// Accepts and serves connections until `stop` says true (or its sender is
/// dropped), then lets the connections in flight finish their requests for
/// up to `grace`.
pub(super) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let over_cap = over_cap_response(limits.max_connections);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_REQUEST_HEAD)
        .max_buf_size(MAX_BUFFER);
    let mut stopping = stop.clone();
    let mut pausing = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|&s| s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if client_gone(&e) => continue,
            Err(e) => {
                if !pausing {
                    eprintln!("memprof: http: cannot accept connections ({e}); pausing");
                }
                pausing = true;
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                    _ = stopping.wait_for(|&s| s) => break,
                }
            }
        };
        pausing = false;
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(serve_connection(
                    stream,
                    slot,
                    http.clone(),
                    app.clone(),
                    stop.clone(),
                ));
            }
            Err(_) => {
                // Dropping the stream closes it.
                let _ = stream.try_write(&over_cap);
            }
        }
    }
    drop(listener);
    // Every slot back means every connection has ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
}

/// Serves one connection, holding `slot` until it ends.
async fn serve_connection(
    stream: TcpStream,
    slot: OwnedSemaphorePermit,
    http: http1::Builder,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _slot = slot;
    let mut connection =
        pin!(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
    // A connection that fails (a header timeout, a client gone, a request
    // hyper could not parse) has nothing left to tell anyone.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop.wait_for(|&s| s) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Errors that end one incoming connection, not the listener's ability to
/// accept the next.
fn client_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

/// The whole response for a connection over the cap.
fn over_cap_response(max_connections: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"the memprof endpoint serves at most {max_connections} connections \
         at once; retry shortly\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_have_small_defaults_and_floors() {
        let config = EndpointConfig::default();
        assert_eq!(config.limits.max_connections, 64);
        assert_eq!(config.limits.header_read_timeout, Duration::from_secs(10));
        let config = config
            .max_connections(0)
            .header_read_timeout(Duration::ZERO);
        assert_eq!(config.limits.max_connections, 1);
        assert_eq!(
            config.limits.header_read_timeout,
            Duration::from_millis(100)
        );
    }

    #[test]
    fn over_cap_response_is_whole_http() {
        let response = String::from_utf8(over_cap_response(64)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("64 connections"));
    }
}
