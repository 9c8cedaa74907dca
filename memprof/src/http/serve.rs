//! `serve()`: the endpoint on its own thread and tokio runtime, so programs
//! without tokio can have it, and an async program's runtime is left alone.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::auth::Token;
use super::connections::serve_connections;
use super::EndpointConfig;

/// Where [`serve`] mounts the routes.
pub const PREFIX: &str = "/debug/memprof";

/// How long shutdown waits for requests in flight (a `seconds=300` delta,
/// say) before dropping them.
const GRACE: Duration = Duration::from_secs(2);

/// Threads for snapshots and rendering; more requests wait their turn.
const BLOCKING_THREADS: usize = 4;

/// Why the endpoint could not start. Its `Debug` text is its `Display`
/// text, so that `.expect(..)` says what to do.
#[non_exhaustive]
pub enum ServeError {
    /// The address did not parse or resolve.
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why.
        reason: String,
    },
    /// A non-loopback address without a token: anyone who can reach the
    /// port could read the profiles (function names, allocation sites).
    PublicWithoutToken(SocketAddr),
    /// The token is one no request could carry (empty, only whitespace,
    /// whitespace at either end, a control or non-ASCII character).
    InvalidToken {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Binding the socket failed (port in use, permission).
    Bind(SocketAddr, std::io::Error),
    /// The runtime or its thread could not be started.
    Runtime(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::InvalidAddress { address, reason } => {
                write!(
                    f,
                    "bad address for the memprof endpoint {address}: {reason}"
                )
            }
            ServeError::PublicWithoutToken(addr) => write!(
                f,
                "refusing to serve the memprof endpoint on {addr}, which is not a loopback \
                 address, without a token: anyone reaching it could read the heap profile. \
                 Set MEMPROF_TOKEN (or EndpointConfig::token) so requests need \
                 `Authorization: Bearer <token>`, or bind 127.0.0.1"
            ),
            ServeError::InvalidToken { reason } => write!(
                f,
                "refusing the memprof endpoint's token (MEMPROF_TOKEN or EndpointConfig::token): \
                 {reason}. Set a token of printable ASCII, or unset MEMPROF_TOKEN to serve \
                 on loopback without one"
            ),
            ServeError::Bind(addr, e) => {
                write!(f, "cannot bind the memprof endpoint to {addr}: {e}")
            }
            ServeError::Runtime(e) => write!(f, "cannot start the memprof endpoint: {e}"),
        }
    }
}

impl std::fmt::Debug for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind(_, e) | ServeError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

/// A running endpoint. Dropping it (or calling [`EndpointHandle::shutdown`])
/// stops the endpoint and waits for its thread; [`EndpointHandle::detach`]
/// keeps it running for the rest of the process.
#[derive(Debug)]
#[must_use = "dropping the handle stops the endpoint; call .detach() to keep it running"]
pub struct EndpointHandle {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl EndpointHandle {
    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the routes, `http://ADDR/debug/memprof`.
    pub fn url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }

    /// Stops accepting, gives requests in flight up to two seconds, and
    /// waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Lets the endpoint run until the process exits.
    pub fn detach(mut self) {
        if let Some(stop) = self.stop.take() {
            std::mem::forget(stop);
        }
        self.thread.take();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Serves the routes under [`PREFIX`] at `addr`, configured from the
/// environment ([`EndpointConfig::from_env`]). Port 0 picks a free port
/// ([`EndpointHandle::local_addr`] says which).
///
/// # Errors
///
/// See [`ServeError`]; notably a non-loopback address without a token is
/// refused.
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     // Its own thread and runtime; the endpoint stops when the handle drops.
///     let endpoint = memprof::serve("127.0.0.1:0").expect("memprof endpoint");
///     println!("open {}", endpoint.url()); // http://127.0.0.1:<port>/debug/memprof
///     assert!(endpoint.local_addr().ip().is_loopback());
///
///     // Reachable from elsewhere only with a token.
///     let refused = memprof::serve("0.0.0.0:0");
///     if std::env::var_os("MEMPROF_TOKEN").is_none() {
///         let error = refused.err().expect("refused without a token");
///         assert!(error.to_string().contains("MEMPROF_TOKEN"));
///     }
/// }
/// ```
pub fn serve<A: ToSocketAddrs + std::fmt::Debug>(addr: A) -> Result<EndpointHandle, ServeError> {
    serve_with(addr, EndpointConfig::from_env())
}

/// Starts the endpoint at `MEMPROF_ADDR` if that variable is set (and not
/// empty); `None` otherwise.
pub fn serve_from_env() -> Option<Result<EndpointHandle, ServeError>> {
    Some(match crate::config::env::addr()? {
        Ok(addr) => serve(addr),
        Err(bad) => Err(ServeError::InvalidAddress {
            address: bad.address,
            reason: bad.reason,
        }),
    })
}

/// [`serve`] with explicit settings.
///
/// # Errors
///
/// As [`serve`]: see [`ServeError`]; a token in `config` that cannot be
/// used is refused ([`ServeError::InvalidToken`]) before anything binds.
pub fn serve_with<A: ToSocketAddrs + std::fmt::Debug>(
    addr: A,
    config: EndpointConfig,
) -> Result<EndpointHandle, ServeError> {
    let addr = resolve(addr)?;
    if let Token::Unusable(reason) = config.token {
        return Err(ServeError::InvalidToken { reason });
    }
    if !is_loopback(&addr) && !config.has_token() {
        return Err(ServeError::PublicWithoutToken(addr));
    }
    let listener = TcpListener::bind(addr).map_err(|e| ServeError::Bind(addr, e))?;
    if !super::unprofiled::profiled() {
        eprintln!("memprof: {}", crate::sample::NOT_GLOBAL_ALLOCATOR);
    }
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Bind(addr, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Bind(addr, e))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("memprof-http")
        // The endpoint's own work (rendering, encoding) is not the
        // program's: keep it out of the profiles it serves.
        .on_thread_start(|| {
            crate::set_thread_rate(Some(0));
        })
        .build()
        .map_err(ServeError::Runtime)?;
    let limits = config.limits;
    let app = super::mount::served_app(config, local);
    let (stop, stopped) = watch::channel(false);

    let thread = std::thread::Builder::new()
        .name("memprof-http".to_string())
        .spawn(move || {
            crate::set_thread_rate(Some(0));
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => serve_connections(listener, app, limits, stopped, GRACE).await,
                    Err(e) => eprintln!("memprof: http: {e}"),
                }
            });
            runtime.shutdown_timeout(GRACE);
        })
        .map_err(ServeError::Runtime)?;
    Ok(EndpointHandle {
        addr: local,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn resolve<A: ToSocketAddrs + std::fmt::Debug>(addr: A) -> Result<SocketAddr, ServeError> {
    let address = format!("{addr:?}");
    let mut addrs = addr
        .to_socket_addrs()
        .map_err(|e| ServeError::InvalidAddress {
            address: address.clone(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or(ServeError::InvalidAddress {
        address,
        reason: "resolved to no address".to_string(),
    })
}

fn is_loopback(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(a) => a.ip().is_loopback(),
        SocketAddr::V6(a) => a.ip().to_canonical().is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_text_says_what_to_do() {
        let refused = ServeError::PublicWithoutToken("0.0.0.0:6062".parse().unwrap());
        // What `.expect("memprof endpoint")` prints.
        let expected = format!("memprof endpoint: {refused:?}");
        assert!(expected.contains("0.0.0.0:6062"), "{expected}");
        assert!(expected.contains("MEMPROF_TOKEN"), "{expected}");
        assert_eq!(format!("{refused:?}"), refused.to_string());
        let blank = serve_with("127.0.0.1:0", EndpointConfig::default().token(" ")).unwrap_err();
        assert!(matches!(blank, ServeError::InvalidToken { .. }));
        let text = format!("{blank:?}");
        assert!(
            text.contains("MEMPROF_TOKEN") && text.contains("only whitespace"),
            "{text}"
        );
    }
}
