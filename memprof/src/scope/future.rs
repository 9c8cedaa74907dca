//! Scopes that follow a future rather than a thread.
//!
//! A [`ScopeGuard`](super::ScopeGuard) marks a *thread*: held across an
//! `.await`, it would charge every other task the runtime polls on that
//! thread meanwhile, and a task that resumes on another worker would leave
//! its scope behind. A [`ScopedFuture`] instead makes its scope the thread's
//! scope for the length of each `poll` and restores the thread's previous
//! scope when the poll returns (or unwinds), so what the future allocates is
//! charged to its scope on whichever thread polls it, and nothing else is.
//!
//! # Where a scoped future nests
//!
//! The scope's path (its parent) is fixed when the future is *created*, from
//! the scope active on the creating thread then, not when it is polled. So
//! nesting follows the tree of futures that create one another: a route's
//! future created while a tenant's future runs is `tenant=acme/route=GET /x`
//! however the runtime schedules either, and a task spawned from inside a
//! request keeps the request as its parent although the runtime polls it
//! from the bare worker loop. This is how `tracing` gives a span its parent
//! and how Go's pprof labels pass to the goroutines a labelled one starts.
//! Resolving the parent at each poll instead would make the path depend on
//! who happens to poll (a spawned task would lose its request, and one future
//! polled from two places would count under two paths).
//!
//! # Cost
//!
//! The scope is looked up (or registered) and its entry counted once, at
//! creation. Each poll then swaps one thread-local word in and back out: no
//! atomic operation, no lock. `benches/scope_poll.rs` measures it (see
//! README.md).

use core::future::{Future, IntoFuture};
use core::pin::Pin;
use core::task::{Context, Poll};

use super::ScopeGuard;

/// A future whose polls run inside a scope; see [`instrument`].
#[must_use = "futures do nothing unless polled or `.await`ed"]
#[derive(Debug)]
pub struct ScopedFuture<F> {
    /// The scope's id, its path fixed at creation.
    scope: u32,
    inner: F,
}

impl<F> ScopedFuture<F> {
    /// Wraps `inner` to run in the already registered scope `scope`.
    pub(crate) fn with_scope_id(scope: u32, inner: F) -> ScopedFuture<F> {
        ScopedFuture { scope, inner }
    }

    fn project(self: Pin<&mut Self>) -> (u32, Pin<&mut F>) {
        // SAFETY: `inner` is structurally pinned: it is never moved out of a
        // pinned `ScopedFuture` (no method hands it out by value or by
        // `&mut` outside a `Pin`), `ScopedFuture` has no `Drop` impl, and it
        // is `Unpin` only when `F` is (the auto trait). `scope` is a plain
        // `u32` read by copy.
        unsafe {
            let this = self.get_unchecked_mut();
            (this.scope, Pin::new_unchecked(&mut this.inner))
        }
    }
}

impl<F: Future> Future for ScopedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let (scope, inner) = self.project();
        // Restores the thread's scope when the poll returns, and when the
        // inner future panics (the runtime may catch it and poll others).
        let _entered = ScopeGuard::enter_id(scope);
        inner.poll(cx)
    }
}

/// Runs `future` inside scope `name`: each time it is polled, what it
/// allocates counts towards the scope, on whatever thread polls it.
///
/// The scope nests inside the scope active where `instrument` is called (see
/// the module's doc on why creation, not each poll, decides the path), and
/// the scope's entry count rises once per call.
///
/// ```
/// # #[global_allocator]
/// # static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
/// async fn ingest(n: usize) -> Vec<u64> {
///     (0..n as u64).collect()
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     struct W;
/// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) {} }
/// #     let waker = std::task::Waker::from(std::sync::Arc::new(W));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
/// #             return v;
/// #         }
/// #     }
/// # }
/// # fn main() {
/// // `block_on` stands for your runtime (`tokio::spawn`, `#[tokio::main]`).
/// let parsed = block_on(memprof::instrument("ingest", ingest(1000)));
/// assert_eq!(parsed.len(), 1000);
/// assert!(memprof::scopes().iter().any(|s| s.path == "ingest" && s.entered == 1));
/// # }
/// ```
pub fn instrument<F: IntoFuture>(name: &'static str, future: F) -> ScopedFuture<F::IntoFuture> {
    let scope = super::enter_child(super::current(), name);
    ScopedFuture::with_scope_id(scope, future.into_future())
}

/// `future.in_scope("name")`: [`instrument`] as a method on every future.
///
/// ```
/// use memprof::InScope;
/// # #[global_allocator]
/// # static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     struct W;
/// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) {} }
/// #     let waker = std::task::Waker::from(std::sync::Arc::new(W));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
/// #             return v;
/// #         }
/// #     }
/// # }
/// # fn main() {
/// let total = block_on(async { vec![1u32; 64].iter().sum::<u32>() }.in_scope("summing"));
/// assert_eq!(total, 64);
/// # }
/// ```
pub trait InScope: IntoFuture + Sized {
    /// Runs this future inside scope `name`; see [`instrument`].
    fn in_scope(self, name: &'static str) -> ScopedFuture<Self::IntoFuture> {
        instrument(name, self)
    }
}

impl<F: IntoFuture> InScope for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{enter_scope, scope_path};
    use crate::thread_state;
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct NoWake;

    impl Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(NoWake));
        future.poll(&mut Context::from_waker(&waker))
    }

    /// Pending `n` times, recording the thread's scope at each poll.
    struct RecordScope {
        polls_left: usize,
        seen: Vec<u32>,
    }

    impl Future for RecordScope {
        type Output = Vec<u32>;

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Vec<u32>> {
            self.seen.push(thread_state::scope());
            if self.polls_left == 0 {
                return Poll::Ready(std::mem::take(&mut self.seen));
            }
            self.polls_left -= 1;
            Poll::Pending
        }
    }

    #[test]
    fn each_poll_enters_the_scope_and_restores_the_thread() {
        let mut future = Box::pin(instrument(
            "future-test",
            RecordScope {
                polls_left: 2,
                seen: Vec::new(),
            },
        ));
        let outside = enter_scope("future-test-outside");
        let thread_scope = thread_state::scope();
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(thread_state::scope(), thread_scope, "restored after a poll");
        assert!(poll_once(future.as_mut()).is_pending());
        let Poll::Ready(seen) = poll_once(future.as_mut()) else {
            panic!("ready on the third poll")
        };
        drop(outside);
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|&s| s == seen[0]));
        assert_eq!(
            scope_path(seen[0]).as_deref(),
            Some("future-test"),
            "the path is fixed at creation, not by the scope it is polled in"
        );
    }

    #[test]
    fn the_parent_is_the_scope_active_at_creation() {
        let outer = enter_scope("future-test-tenant");
        let future = RecordScope {
            polls_left: 0,
            seen: Vec::new(),
        }
        .in_scope("future-test-route");
        drop(outer);
        let mut future = Box::pin(future);
        let Poll::Ready(seen) = poll_once(future.as_mut()) else {
            panic!("ready at once")
        };
        assert_eq!(
            scope_path(seen[0]).as_deref(),
            Some("future-test-tenant/future-test-route")
        );
        let stats = crate::scope::scopes();
        let route = stats
            .iter()
            .find(|s| s.path == "future-test-tenant/future-test-route")
            .unwrap();
        assert_eq!(route.entered, 1, "counted once, at creation, not per poll");
    }

    #[test]
    fn a_panicking_poll_restores_the_thread_scope() {
        struct Panics;
        impl Future for Panics {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                panic!("inner future panics")
            }
        }
        let mut future = Box::pin(Panics.in_scope("future-test-panics"));
        let before = thread_state::scope();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = poll_once(future.as_mut());
        }));
        assert!(caught.is_err());
        assert_eq!(thread_state::scope(), before);
    }
}
