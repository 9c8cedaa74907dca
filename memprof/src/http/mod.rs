//! The embedded HTTP endpoint: an axum [`Router`] serving profiles, stats
//! and metrics, and [`serve`] to run it on its own thread.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! fn main() {
//!     // Own thread and runtime; works in programs without tokio. Keep the
//!     // handle: dropping it stops the endpoint.
//!     let endpoint = memprof::serve("127.0.0.1:6060").expect("memprof endpoint");
//!     println!("profiles at {}", endpoint.url());
//!     // ... or inside an existing axum app:
//!     // let app = axum::Router::new().nest("/debug/memprof", memprof::http::router());
//! }
//! ```
//!
//! # Routes
//!
//! All are `GET` unless marked, relative to where the router is nested
//! (`/debug/memprof` under [`serve`]):
//!
//! | route | answers |
//! | --- | --- |
//! | `/` | the page: memory over time, doctor findings, top stacks, leak candidates, links |
//! | `/heap` | `format=pprof` (default) \| `folded` \| `svg` \| `json`; `kind=inuse_space` (default) \| `inuse_objects` \| `alloc_space` \| `alloc_objects`; `seconds=1..300` for the change over the next N seconds; `at=now` (default) \| `peak` for the profile kept at the heap's highest ([`crate::history::peak`]); `limit`, `min_share` (below) |
//! | `/flamegraph` | SVG; `kind`, `seconds`, `at`, `limit`, `min_share`, or `base=ID` for a differential flamegraph from a snapshot to now |
//! | `POST /snapshots` | keeps a snapshot (the 16 newest by default), answers 201 `{"id": ...}` |
//! | `/snapshots` | the kept snapshots, then the peak's (id `"peak"`) when one is kept |
//! | `/snapshots/{id}` | `id` a kept snapshot's or `peak`; `format=json` (default) \| `folded` \| `svg` \| `pprof`; `kind`, `limit`, `min_share` |
//! | `/diff?base=ID[&to=ID]` | from snapshot `base` to `to` (default: now); `format=json` (default) \| `folded` (`stack before after`) \| `svg` (differential) \| `pprof` (the delta) \| `text` (the largest changes); `kind` |
//! | `/stats` | JSON: rate, sampler counters, heap totals, scopes, jemalloc totals and ratios (`allocator`, `null` with `allocator_unavailable` when jemalloc does not serve the process), process memory (`process`) |
//! | `/metrics` | Prometheus text: profiler, scopes, allocator, process, cgroup, host memory and pressure, history sampler cost |
//! | `/history` | the series the page plots: `since=UNIX_MS` (points after it), `stacks=true` (per-stack in-use bytes), `format=json` (default) \| `text` |
//! | `/host` | process, host, cgroup and top processes by PSS, named by program (command lines only with [`EndpointConfig::command_lines`]): `top=0..50` (default 5; 0 skips the scan of all processes), `format=json` \| `text` |
//! | `/allocator` | jemalloc statistics; 200 `{"available": false, "reason"}` when jemalloc does not serve the process; `format=json` \| `text` |
//! | `POST /allocator/purge` | purges dirty pages, answers resident before and after; 503 without jemalloc; `format=json` \| `text` |
//! | `/doctor` | findings over the readings now and the history's last minute; `format=json` \| `text` |
//! | `/leaks` | leak candidates: `min_age=0..86400` seconds (default 10), `limit=1..1000` (default 20), `format=json` \| `text` |
//! | `/top` | the largest stacks, small enough to poll: `n=1..100` (default 10), `kind`, `format=json` \| `text` |
//! | `/dumps` | the flight recorder ([`crate::dump`]): the dumps in the dump directory, newest first, this process's `written`/`failed` and last `error`, and the `previous_run` (the newest dump of another pid, `oom_killed` from the kernel log); `format=json` \| `text` |
//! | `POST /dumps` | writes a `request` dump now; 201 with its entry; 503 when no directory is set or the write fails |
//! | `/dumps/{id}/{file}` | a listed dump's `summary.json`, `heap.pb.gz` or `heap.folded`; `flamegraph` draws its folded profile as SVG, `flamegraph?base=current` a differential from it to the live heap |
//!
//! Profile views are bounded (see [`crate::profile::Bound`]): `limit=N`
//! shows the N stacks largest by `kind` (default 1000; for SVG, every
//! stack, as a flamegraph leaves out what is too narrow to draw) and sums
//! the rest into one `[other N stacks]` stack, so totals stay exact;
//! `min_share=F` (0 to 1) sends stacks holding less than that fraction of
//! the total to the remainder too; `limit=all` (or `0`) shows every stack,
//! streamed to the client as it is written.
//!
//! A bad parameter (unknown name, bad value, given twice) gets 400 with
//! `{"error", "parameter", "expected"}`; an unknown route or snapshot 404;
//! a wrong method 405; an action the process cannot do (a purge without
//! jemalloc) 503.
//!
//! # Security
//!
//! [`serve`] binds loopback addresses only, unless a token is configured
//! ([`EndpointConfig::token`] or `MEMPROF_TOKEN`); then every request must carry
//! `Authorization: Bearer <token>` or gets 401, except the page at `/`,
//! which is static: it asks for the token, keeps it in the tab's
//! `sessionStorage` and sends it on each of its requests. A blank token is
//! refused, not taken for none. [`serve`] also caps its connections and
//! times out slow request heads ([`EndpointConfig::max_connections`],
//! [`EndpointConfig::header_read_timeout`]).
//!
//! Against web pages in an operator's browser: on a loopback bind, a request
//! whose `Host` is not a loopback address, `localhost`, the bound address or
//! a name given to [`EndpointConfig::allow_host`] gets 421 (DNS rebinding); a
//! request that changes state (`POST`) whose `Origin` or `Sec-Fetch-Site`
//! shows another origin gets 403, wherever the router runs. Nested in an
//! app, the router checks `Host` only when [`EndpointConfig::allow_host`] names the
//! app's hosts. Every response carries `X-Content-Type-Options: nosniff`,
//! and the page a Content-Security-Policy that allows its own inline script
//! and style and nothing else. `/host` lists other processes by program
//! name only: their command lines often carry secrets
//! ([`EndpointConfig::command_lines`] shows them).
//!
//! # Adding a route
//!
//! Profile routes (stacks rendered as pprof, folded, SVG or JSON through
//! [`crate::export`]) are handlers in `routes.rs`; an incident view (a body
//! answered as JSON or `format=text`) is one file in `views/` holding the
//! body type, its `respond::TextForm` (the text form) and the handler.
//! A handler is an `async fn` taking a `params::QueryPairs`; it parses it
//! with `Params::parse(query, &[names])` so unknown and repeated parameters
//! are refused, does the heavy work in `respond::blocking(..)`, answers
//! through `respond::answer(&body, format)` (views) or its own renderer
//! (profiles), returns `Result<Response, ApiError>`, and gets one
//! `.route(..)` line in [`router_with`].

mod auth;
mod connections;
mod diff_text;
mod error;
mod guard;
mod mount;
mod page;
mod params;
mod respond;
mod routes;
mod serve;
mod store;
mod stream;
mod unprofiled;
mod views;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

pub use error::ApiError;
pub use serve::{serve, serve_from_env, serve_with, EndpointHandle, ServeError, PREFIX};

/// The endpoint's settings.
///
/// [`EndpointConfig::default`] has no token, keeps 16 snapshots, checks `Host` on a
/// loopback bind, lists other processes by name only, and (under [`serve`])
/// serves at most 64 connections at once, each given 10 s to send a
/// request's head; [`EndpointConfig::from_env`] also reads `MEMPROF_TOKEN`.
#[derive(Clone)]
pub struct EndpointConfig {
    token: auth::Token,
    max_snapshots: usize,
    hosts: guard::Hosts,
    command_lines: bool,
    bound: Option<std::net::SocketAddr>,
    limits: connections::Limits,
}

impl Default for EndpointConfig {
    fn default() -> EndpointConfig {
        EndpointConfig {
            token: auth::Token::None,
            max_snapshots: 16,
            hosts: guard::Hosts::default(),
            command_lines: false,
            bound: None,
            limits: connections::Limits::default(),
        }
    }
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field(
                "token",
                &match self.token {
                    auth::Token::None => "none",
                    auth::Token::Required(_) => "<set>",
                    auth::Token::Unusable(why) => why,
                },
            )
            .field("max_snapshots", &self.max_snapshots)
            .field("hosts", &self.hosts)
            .field("command_lines", &self.command_lines)
            .field("max_connections", &self.limits.max_connections)
            .field("header_read_timeout", &self.limits.header_read_timeout)
            .finish()
    }
}

impl EndpointConfig {
    /// The defaults, with the token taken from `MEMPROF_TOKEN` if it is set
    /// (set but blank, it is refused as [`EndpointConfig::token`] says).
    pub fn from_env() -> EndpointConfig {
        let usable = |token: &str| match auth::Token::parse(token) {
            auth::Token::Unusable(why) => Err(why),
            _ => Ok(()),
        };
        match crate::config::env::token(usable) {
            None => EndpointConfig::default(),
            Some(Ok(token)) => EndpointConfig::default().token(token),
            Some(Err(why)) => EndpointConfig {
                token: auth::Token::Unusable(why),
                ..EndpointConfig::default()
            },
        }
    }

    /// Requires `Authorization: Bearer <token>` on every request (the
    /// scheme in any case), except the page at the routes' root, which is
    /// static and asks the person for the token.
    ///
    /// A token no request could carry (empty, only whitespace, whitespace
    /// at either end, a control or non-ASCII character) is not taken for
    /// "no token": [`serve`] refuses to start with
    /// [`ServeError::InvalidToken`], and a router built with it answers
    /// every request 401.
    pub fn token(mut self, token: impl Into<String>) -> EndpointConfig {
        self.token = auth::Token::parse(&token.into());
        self
    }

    /// Requires no token (whatever `MEMPROF_TOKEN` says, if applied after
    /// [`EndpointConfig::from_env`]).
    pub fn without_token(mut self) -> EndpointConfig {
        self.token = auth::Token::None;
        self
    }

    /// How many snapshots `POST /snapshots` keeps before dropping the
    /// oldest (at least 1).
    pub fn max_snapshots(mut self, max: usize) -> EndpointConfig {
        self.max_snapshots = max.max(1);
        self
    }

    /// Whether requests need a token (a usable one).
    pub fn has_token(&self) -> bool {
        matches!(self.token, auth::Token::Required(_))
    }

    /// Also answers requests whose `Host` is `name` (a name or address; a
    /// port is ignored), and takes state changes from that origin: for an
    /// endpoint reached through a proxy or by a name other than loopback.
    /// Once a name is allowed, `Host` is checked wherever the router runs,
    /// nested in an app too (loopback names stay accepted); call it once per
    /// name.
    ///
    /// ```
    /// let config = memprof::http::EndpointConfig::from_env().allow_host("memprof.internal.example");
    /// ```
    pub fn allow_host(mut self, name: impl AsRef<str>) -> EndpointConfig {
        let name = guard::allowed_name(name.as_ref());
        let mut names = match self.hosts {
            guard::Hosts::Allowed(names) => names,
            _ => Vec::new(),
        };
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        self.hosts = guard::Hosts::Allowed(names);
        self
    }

    /// Answers whatever `Host` a request names: turns the DNS-rebinding
    /// check off, for a proxy that checks names itself.
    pub fn any_host(mut self) -> EndpointConfig {
        self.hosts = guard::Hosts::Any;
        self
    }

    /// Whether `/host` shows the whole command lines of the host's
    /// processes. Off by default: arguments often carry secrets (passwords,
    /// tokens in `curl -H ...`), and `/host` shows only program names.
    pub fn command_lines(mut self, show: bool) -> EndpointConfig {
        self.command_lines = show;
        self
    }

    /// The address [`serve`] bound: on loopback, `Host` is checked.
    pub(crate) fn bound_to(mut self, addr: std::net::SocketAddr) -> EndpointConfig {
        self.bound = Some(addr);
        self
    }
}

/// What every handler can reach.
#[derive(Clone)]
struct AppState(Arc<Inner>);

struct Inner {
    token: auth::Token,
    store: store::Store,
    /// Whether `/host` shows other processes' command lines.
    command_lines: bool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    fn snapshot(&self, id: u64) -> Result<Arc<crate::profile::Snapshot>, ApiError> {
        self.store.get(id).ok_or_else(|| {
            ApiError::NotFound(format!("no snapshot {id} (kept: see GET snapshots)"))
        })
    }
}

/// The routes, configured from the environment ([`EndpointConfig::from_env`]), to
/// nest in an app: `Router::new().nest("/debug/memprof", router())`.
///
/// # Examples
///
/// ```
/// use axum::routing::get;
///
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn app() -> axum::Router {
///     axum::Router::new()
///         .route("/", get(|| async { "hello" }))
///         .nest("/debug/memprof", memprof::http::router())
/// }
///
/// fn main() {
///     let _app = app(); // serve it with axum::serve as usual
/// }
/// ```
pub fn router() -> Router {
    router_with(EndpointConfig::from_env())
}

/// The routes with explicit settings.
///
/// Starts the history sampler ([`crate::history::ensure_started`]) with its
/// default settings unless it runs already; a failure to start it is said
/// on stderr and `/history` answers 500. Starts the dump watcher
/// ([`crate::dump::ensure_started`]) when a dump directory is set.
pub fn router_with(config: EndpointConfig) -> Router {
    if let Err(e) = crate::history::ensure_started() {
        eprintln!("memprof: history sampler: {e}");
    }
    if let Err(e) = crate::dump::ensure_started() {
        eprintln!("memprof: dump watcher: {e}");
    }
    let guard = guard::Guard::new(&config.hosts, config.bound);
    if let auth::Token::Unusable(why) = config.token {
        eprintln!("memprof: http: the token is refused ({why}); every request will get 401");
    }
    let state = AppState(Arc::new(Inner {
        token: config.token,
        store: store::Store::new(config.max_snapshots),
        command_lines: config.command_lines,
    }));
    Router::new()
        .route("/", get(page::index))
        .route("/heap", get(routes::heap))
        .route("/flamegraph", get(routes::flamegraph))
        .route(
            "/snapshots",
            get(routes::list_snapshots).post(routes::create_snapshot),
        )
        .route("/snapshots/{id}", get(routes::get_snapshot))
        .route("/diff", get(routes::diff))
        .route("/stats", get(routes::stats))
        .route("/metrics", get(routes::metrics))
        .route("/history", get(views::history_view))
        .route("/host", get(views::host_view))
        .route("/allocator", get(views::allocator_view))
        .route(
            "/allocator/purge",
            axum::routing::post(views::allocator_purge),
        )
        .route("/doctor", get(views::doctor_view))
        .route("/leaks", get(views::leaks_view))
        .route("/top", get(views::top_view))
        .route("/dumps", get(views::dumps_view).post(views::create_dump))
        .route("/dumps/{id}/{file}", get(views::dump_file))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(unprofiled::warn_when_unprofiled))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .with_state(state)
}

#[cfg(test)]
mod tests;
