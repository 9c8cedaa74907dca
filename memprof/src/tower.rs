//! Memory by HTTP route: a tower layer that runs each request in a scope
//! named after the route it matched (feature `tower`).
//!
//! ```no_run
//! use axum::routing::{get, post};
//! use axum::Router;
//!
//! # async fn user() {}
//! # async fn ingest() {}
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(user))
//!     .route("/ingest", post(ingest))
//!     // After the routes: each request's future and its response body
//!     // run in scope `route=GET /users/{id}`, `route=POST /ingest`, ...
//!     .layer(memprof::tower::RouteScopeLayer::new());
//! ```
//!
//! The scope is `route=<METHOD> <matched path>` (a label in memprof's
//! `key=value` convention): the route's pattern from axum's
//! [`MatchedPath`], never the request's own path, so `/users/42` and
//! `/users/43` are one scope. A request that matched no route (a 404 from
//! the fallback, or a layer put around the whole `Router` where axum has
//! not matched yet) goes to `route=~unmatched`. Distinct routes are capped
//! at [`MAX_ROUTES`] (a method outside the standard ones is still a name,
//! and a client chooses it); past the cap they share `route=~other`.
//!
//! Add the layer with `Router::layer` (or `route_layer`), which puts it
//! between the routing and each route, where `MatchedPath` is known; put
//! around the whole router (`ServiceBuilder` outside `Router`), every
//! request is `route=~unmatched`.
//!
//! What runs in the scope: the route's `call` (work a service does before
//! returning its future), every poll of the future that produces the
//! response, and every poll of the response body (a streamed body's chunks
//! are made as hyper polls it, after the handler returned). The scope's
//! parent is the scope active when the request reaches the layer (see
//! `memprof::instrument`), so a layer inside a tenant's scope gives
//! `tenant=acme/route=GET /x`. Wrapping the body costs axum one boxing of
//! the response body per request (it turns any body into its own `Body`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};

use crate::scope::{current, enter_child, ScopeGuard, ScopedFuture};

/// The most distinct `route=` scopes one process makes; further routes
/// count under `route=~other`.
pub const MAX_ROUTES: usize = 1024;

/// The scope of requests no route matched.
pub const UNMATCHED: &str = "route=~unmatched";
/// The scope of routes past [`MAX_ROUTES`].
pub const OVERFLOW: &str = "route=~other";

/// A [`tower_layer::Layer`] that runs each request in the scope of its
/// matched route; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteScopeLayer {
    _private: (),
}

impl RouteScopeLayer {
    /// The layer; it has no settings.
    pub fn new() -> RouteScopeLayer {
        RouteScopeLayer::default()
    }
}

impl<S> tower_layer::Layer<S> for RouteScopeLayer {
    type Service = RouteScope<S>;

    fn layer(&self, inner: S) -> RouteScope<S> {
        RouteScope { inner }
    }
}

/// The service [`RouteScopeLayer`] wraps around a route.
#[derive(Clone, Debug)]
pub struct RouteScope<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RouteScope<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ScopedBody<ResBody>>;
    type Error = S::Error;
    type Future = RouteScopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> RouteScopeFuture<S::Future> {
        let name = route_name(
            request.method(),
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        let scope = enter_child(current(), name);
        // The route's own `call` runs in the scope too, so what it does
        // before returning, and futures it creates, count there.
        let inner = {
            let _entered = ScopeGuard::enter_id(scope);
            self.inner.call(request)
        };
        RouteScopeFuture {
            inner: ScopedFuture::with_scope_id(scope, inner),
            scope,
        }
    }
}

/// The response future of [`RouteScope`]: polls the route's future in the
/// route's scope and gives the response body the same scope.
#[must_use = "futures do nothing unless polled or `.await`ed"]
#[derive(Debug)]
pub struct RouteScopeFuture<F> {
    inner: ScopedFuture<F>,
    scope: u32,
}

impl<F, B, E> Future for RouteScopeFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ScopedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned (never moved out of a
        // pinned `RouteScopeFuture`, which has no `Drop` impl and is
        // `Unpin` only when the inner future is); `scope` is copied.
        let (inner, scope) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.inner), this.scope)
        };
        inner
            .poll(cx)
            .map(|result| result.map(|response| response.map(|body| ScopedBody { body, scope })))
    }
}

/// A response body polled in the scope of the request that made it.
#[derive(Debug)]
pub struct ScopedBody<B> {
    body: B,
    scope: u32,
}

impl<B: Body> Body for ScopedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        // SAFETY: as in `RouteScopeFuture::poll`: `body` is structurally
        // pinned and never moved out; `scope` is copied.
        let (body, scope) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.body), this.scope)
        };
        let _entered = ScopeGuard::enter_id(scope);
        body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Route scope names made so far, by matched path: the methods seen on it
/// and their names.
type Names = HashMap<Box<str>, Vec<(Method, &'static str)>>;

/// The names of this process. They live for the process (scopes name them
/// by `&'static str`), so there are at most [`MAX_ROUTES`] of them.
static NAMES: RwLock<Option<Names>> = RwLock::new(None);

/// `route=<METHOD> <path>`, made once per route and method.
fn route_name(method: &Method, path: Option<&str>) -> &'static str {
    let Some(path) = path else {
        return UNMATCHED;
    };
    if let Some(name) = NAMES
        .read()
        .ok()
        .and_then(|names| known(names.as_ref()?, method, path))
    {
        return name;
    }
    // memprof's own bookkeeping: kept out of the profile.
    crate::thread_state::unsampled(|| match NAMES.write() {
        Ok(mut names) => add(
            names.get_or_insert_with(HashMap::new),
            method,
            path,
            MAX_ROUTES,
        ),
        Err(_) => OVERFLOW,
    })
}

fn known(names: &Names, method: &Method, path: &str) -> Option<&'static str> {
    names
        .get(path)?
        .iter()
        .find(|(m, _)| m == method)
        .map(|&(_, name)| name)
}

/// The name of `method` on `path`, made if new and fewer than `cap` exist.
fn add(names: &mut Names, method: &Method, path: &str, cap: usize) -> &'static str {
    if let Some(name) = known(names, method, path) {
        return name;
    }
    if names.values().map(Vec::len).sum::<usize>() >= cap {
        return OVERFLOW;
    }
    let name: &'static str =
        Box::leak(format!("route={} {path}", method.as_str()).into_boxed_str());
    names
        .entry(path.into())
        .or_default()
        .push((method.clone(), name));
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_method_and_pattern_made_once() {
        let a = route_name(&Method::GET, Some("/tower-test/{id}"));
        let b = route_name(&Method::GET, Some("/tower-test/{id}"));
        assert_eq!(a, "route=GET /tower-test/{id}");
        assert!(std::ptr::eq(a, b), "one name per route");
        assert_eq!(
            route_name(&Method::POST, Some("/tower-test/{id}")),
            "route=POST /tower-test/{id}"
        );
        assert_eq!(route_name(&Method::GET, None), UNMATCHED);
    }

    #[test]
    fn routes_past_the_cap_share_the_overflow_name() {
        let mut names = Names::new();
        let made: Vec<&str> = (0..12)
            .map(|i| add(&mut names, &Method::GET, &format!("/r/{}", i % 11), 10))
            .collect();
        assert_eq!(made[..10].iter().filter(|&&n| n == OVERFLOW).count(), 0);
        assert_eq!(made[10], OVERFLOW, "the eleventh route is past the cap");
        assert_eq!(made[11], "route=GET /r/0", "a known route keeps its name");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(add(&mut names, &custom, "/r/1", 10), OVERFLOW);
    }
}
