//! Scopes: attributing what a piece of code allocates to a named component.
//!
//! `memprof::scope("parser", || ...)` (or `#[memprof::scope]` on a function)
//! marks the current thread as inside "parser" for the call. Samples taken
//! meanwhile carry the scope, so each scope gets estimates of bytes and
//! objects allocated and freed, its net in-use and its peak, the way PHP's
//! `memory_get_usage`/`memory_get_peak_usage` answer per function, and
//! flamegraphs show the scope as a frame at the root of its stacks.
//!
//! Scopes nest: a scope's identity is its path (`request/parser`), and an
//! allocation counts towards the scope it was made in and every enclosing
//! one. Figures are sampling estimates, exact at rate 1.
//!
//! A scope marks a thread; async code gives the scope to a future instead
//! ([`future`]: `memprof::instrument`, `fut.in_scope(..)`, and
//! `#[memprof::scope]` on an `async fn`), which enters it for each poll.
//!
//! Cost: when no scope is active, nothing on the allocation path (the scope
//! id is read only when a sample is recorded). Entering a scope the thread
//! entered recently is a thread-local cache lookup and two thread-local
//! writes; the first entry takes the registry's lock. Measured by
//! `benches/scope.rs` (see README.md).
//!
//! The registry: each scope's parent and name sit in its record, written
//! once before its id is published, so readers (`/stats`, `/metrics`,
//! snapshots naming scopes) take no lock. Registering takes a spin lock over
//! a fixed index, and nothing allocates under it, so the fork handlers can
//! hold it across `fork()` (see `crate::fork`).
//!
//! Names made at run time (span names and fields, see `crate::tracing`)
//! are copied once into a bounded arena when their scope is registered
//! ([`names`]); label segments `key=value` keep at most a cap of distinct
//! values per key ([`labels`]). Both live under the registry's lock.

mod labels;
mod names;

#[cfg_attr(not(feature = "tracing"), allow(unused_imports))]
pub(crate) use labels::label_scope_id;
pub use labels::{enter_label, LabelKeyStats, DEFAULT_LABEL_CAP, OTHER_LABEL_VALUE};
#[cfg_attr(not(feature = "tracing"), allow(unused_imports))]
pub(crate) use names::{count_entry, static_scope_id};
pub use names::{enter_scope_named, registry_stats, scope_named, ScopeRegistryStats};

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

mod future;

pub use future::{instrument, InScope, ScopedFuture};

use crate::fixed::Fixed;
use crate::sync::SpinLock;
use crate::thread_state;

/// The most distinct scope paths; entering more reuses the parent scope.
pub(crate) const MAX_SCOPES: usize = 4096;

/// One scope's figures. The objects and bytes counters are wrapping sums in
/// fixed point (see [`crate::fixed`]); `peak_bytes` is the largest in-use
/// bytes sum seen after an allocation.
struct ScopeRecord {
    parent: AtomicU32,
    /// The name's bytes and length: a `&'static str` (the caller's, or a
    /// copy in the name arena), written before the id is published (see
    /// [`REGISTERED`]).
    name_ptr: AtomicPtr<u8>,
    name_len: AtomicUsize,
    alloc_objects: AtomicU64,
    alloc_bytes: AtomicU64,
    freed_objects: AtomicU64,
    freed_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    entered: AtomicU64,
}

impl ScopeRecord {
    const fn new() -> ScopeRecord {
        ScopeRecord {
            parent: AtomicU32::new(0),
            name_ptr: AtomicPtr::new(core::ptr::null_mut()),
            name_len: AtomicUsize::new(0),
            alloc_objects: AtomicU64::new(0),
            alloc_bytes: AtomicU64::new(0),
            freed_objects: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
            entered: AtomicU64::new(0),
        }
    }
}

/// Scope 0 is "no scope"; ids index `RECORDS`.
static RECORDS: [ScopeRecord; MAX_SCOPES] = [const { ScopeRecord::new() }; MAX_SCOPES];

/// The highest id handed out: records `1..=REGISTERED` have their parent and
/// name written. Stored with Release after writing them; readers load it
/// with Acquire before reading a record.
static REGISTERED: AtomicU32 = AtomicU32::new(0);

/// Slots in the index: twice the scopes, so it is at most half full.
const INDEX_SLOTS: usize = 2 * MAX_SCOPES;

/// What registering reads and writes, under one lock: the index, the
/// arena runtime names are copied into, and the label keys' admitted
/// values.
struct Registry {
    /// `(parent, name)` to id, open addressing from [`index_home`]; a slot
    /// holds an id, 0 when empty.
    index: [u32; INDEX_SLOTS],
    names: names::NameArena,
    labels: labels::LabelValues,
}

/// The registry. Only used to register, under its lock.
static INDEX: SpinLock<Registry> = SpinLock::new(Registry {
    index: [0; INDEX_SLOTS],
    names: names::NameArena::new(),
    labels: labels::LabelValues::new(),
});

impl ScopeRecord {
    fn name(&self) -> &'static str {
        let ptr = self.name_ptr.load(Ordering::Relaxed);
        if ptr.is_null() {
            return "";
        }
        // SAFETY: a non-null pointer and its length were copied from one
        // `&'static str` in `register` before the id was published, and
        // never change afterwards; callers read only published ids.
        unsafe {
            core::str::from_utf8_unchecked(core::slice::from_raw_parts(
                ptr,
                self.name_len.load(Ordering::Relaxed),
            ))
        }
    }
}

/// The record of `id`, if `id` has been handed out.
fn published(id: u32) -> Option<&'static ScopeRecord> {
    (id != 0 && id <= REGISTERED.load(Ordering::Acquire)).then(|| &RECORDS[id as usize])
}

/// Where `(parent, name)` starts its probe in the index (FxHash-style).
fn index_home(parent: u32, name: &str) -> usize {
    const K: u64 = 0x51_7C_C1_B7_27_22_0A_95;
    let h = name
        .bytes()
        .fold(u64::from(parent).wrapping_mul(K), |h, b| {
            (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K)
        });
    (h >> 32) as usize % INDEX_SLOTS
}

/// Walks `scope` and its ancestors (bounded, in case of a corrupt id).
fn for_each_enclosing(scope: u32, mut f: impl FnMut(&ScopeRecord)) {
    let mut id = scope;
    for _ in 0..64 {
        if id == 0 || id as usize >= MAX_SCOPES {
            return;
        }
        let record = &RECORDS[id as usize];
        f(record);
        id = record.parent.load(Ordering::Relaxed);
    }
}

/// Adds a sampled allocation to `scope` and its ancestors. Lock-free: one
/// `fetch_add` per counter (fixed point, see [`crate::fixed`]), and the
/// peak is written only when it rises.
pub(crate) fn record_alloc(scope: u32, bytes: usize, weight: f64) {
    if scope == 0 {
        return;
    }
    let add = Fixed::new(bytes, weight);
    for_each_enclosing(scope, |r| {
        r.alloc_objects.fetch_add(add.objects, Ordering::Relaxed);
        let allocated = r
            .alloc_bytes
            .fetch_add(add.bytes, Ordering::Relaxed)
            .wrapping_add(add.bytes);
        let net = Fixed::in_use(allocated, r.freed_bytes.load(Ordering::Relaxed));
        if net > r.peak_bytes.load(Ordering::Relaxed) {
            r.peak_bytes.fetch_max(net, Ordering::Relaxed);
        }
    });
}

/// Adds a freed sample to `scope` and its ancestors. Lock-free.
pub(crate) fn record_free(scope: u32, bytes: usize, weight: f64) {
    if scope == 0 {
        return;
    }
    let add = Fixed::new(bytes, weight);
    for_each_enclosing(scope, |r| {
        r.freed_objects.fetch_add(add.objects, Ordering::Relaxed);
        r.freed_bytes.fetch_add(add.bytes, Ordering::Relaxed);
    });
}

/// Keeps a scope active until dropped; see [`enter_scope`].
#[must_use = "the scope ends when this guard is dropped"]
pub struct ScopeGuard {
    previous: u32,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        thread_state::set_scope(self.previous);
    }
}

impl ScopeGuard {
    /// Makes `id` the thread's scope until the guard drops (the guard then
    /// restores the scope that was active before, also when unwinding).
    pub(crate) fn enter_id(id: u32) -> ScopeGuard {
        ScopeGuard {
            previous: thread_state::set_scope(id),
            _not_send: core::marker::PhantomData,
        }
    }
}

/// The id of scope `name` inside `parent`, registered if new, with one
/// entry counted; `parent` itself when the registry is full.
pub(crate) fn enter_child(parent: u32, name: &'static str) -> u32 {
    let id = cached_id(parent, name).unwrap_or_else(|| {
        let id = register(parent, name);
        remember_id(parent, name, id);
        id
    });
    if id == 0 {
        return parent;
    }
    RECORDS[id as usize].entered.fetch_add(1, Ordering::Relaxed);
    id
}

/// The thread's innermost scope now (0: none).
pub(crate) fn current() -> u32 {
    thread_state::scope()
}

/// Enters scope `name` (nested inside the current one) until the guard drops.
///
/// The guard is not `Send`: a scope belongs to the thread that entered it.
/// Do not hold one across an `.await`; give the future a scope instead
/// ([`instrument`], [`InScope::in_scope`]).
pub fn enter_scope(name: &'static str) -> ScopeGuard {
    ScopeGuard::enter_id(enter_child(thread_state::scope(), name))
}

/// Runs `f` inside scope `name`.
///
/// ```
/// let parsed: Vec<u32> = memprof::scope("parser", || (0..100).collect());
/// assert_eq!(parsed.len(), 100);
/// ```
pub fn scope<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let _guard = enter_scope(name);
    f()
}

thread_local! {
    /// Recently entered scopes of this thread, `(parent, name address,
    /// name length, id)`, so a scope entered per request skips the registry's
    /// lock: a small direct-mapped cache keyed by the name's address.
    static RECENT: [core::cell::Cell<(u32, usize, usize, u32)>; 8] =
        const { [const { core::cell::Cell::new((0, 0, 0, 0)) }; 8] };
}

fn recent_slot(parent: u32, name: &'static str) -> usize {
    ((name.as_ptr() as usize >> 3) ^ parent as usize) % 8
}

fn cached_id(parent: u32, name: &'static str) -> Option<u32> {
    RECENT
        .try_with(|recent| {
            let (p, ptr, len, id) = recent[recent_slot(parent, name)].get();
            (p == parent && ptr == name.as_ptr() as usize && len == name.len() && id != 0)
                .then_some(id)
        })
        .ok()
        .flatten()
}

fn remember_id(parent: u32, name: &'static str, id: u32) {
    let _ = RECENT.try_with(|recent| {
        recent[recent_slot(parent, name)].set((parent, name.as_ptr() as usize, name.len(), id));
    });
}

/// The id of `(parent, name)`, registering it if new; 0 when the table is
/// full. Nothing allocates under the index's lock.
fn register(parent: u32, name: &'static str) -> u32 {
    crate::fork::register();
    register_locked(&mut INDEX.lock(), parent, names::Name::Static(name))
}

/// [`register`] with the lock held; a runtime name is copied into the
/// arena when its scope is new. 0 when the table or the arena is full
/// (counted in [`names::NOT_REGISTERED`]).
fn register_locked(registry: &mut Registry, parent: u32, name: names::Name<'_>) -> u32 {
    let text = name.as_str();
    let mut slot = index_home(parent, text);
    loop {
        let id = registry.index[slot];
        if id == 0 {
            break;
        }
        let record = &RECORDS[id as usize];
        if record.parent.load(Ordering::Relaxed) == parent && record.name() == text {
            return id;
        }
        slot = (slot + 1) % INDEX_SLOTS;
    }
    let id = REGISTERED.load(Ordering::Relaxed) + 1;
    let kept = (id as usize) < MAX_SCOPES;
    let Some(name) = kept.then(|| registry.names.keep(name)).flatten() else {
        names::NOT_REGISTERED.fetch_add(1, Ordering::Relaxed);
        return 0;
    };
    let record = &RECORDS[id as usize];
    record.parent.store(parent, Ordering::Relaxed);
    record.name_len.store(name.len(), Ordering::Relaxed);
    record
        .name_ptr
        .store(name.as_ptr().cast_mut(), Ordering::Relaxed);
    registry.index[slot] = id;
    // Release: a reader that sees the id sees the parent and name.
    REGISTERED.store(id, Ordering::Release);
    id
}

/// Prepare handler (see `crate::fork`): holds the index across `fork()`.
pub(crate) fn prepare_fork() {
    INDEX.lock_for_fork();
}

/// Parent and child handler: releases the index.
///
/// # Safety
///
/// Must follow [`prepare_fork`] on the same thread (in the child, its copy).
pub(crate) unsafe fn after_fork() {
    // SAFETY: taken by `prepare_fork`, per the contract.
    unsafe { INDEX.unlock_after_fork() };
}

/// One scope's figures (estimates; exact at rate 1).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScopeStats {
    /// The scope's id (stable for the process).
    pub id: u32,
    /// The path of names from the outermost scope, joined by `/`.
    pub path: String,
    /// The enclosing scope's id (0: the scope is at the top).
    #[serde(default)]
    pub parent: u32,
    /// Times the scope was entered (a scoped future counts once, when it is
    /// created, however often it is polled).
    pub entered: u64,
    /// Objects allocated inside it.
    pub alloc_objects: f64,
    /// Bytes allocated inside it.
    pub alloc_bytes: f64,
    /// Of those, objects freed since (anywhere).
    pub freed_objects: f64,
    /// Of those, bytes freed since (anywhere).
    pub freed_bytes: f64,
    /// Bytes allocated inside it and still live.
    pub net_bytes: f64,
    /// The highest `net_bytes` seen.
    pub peak_bytes: f64,
}

/// The path of scope `id` (`outer/inner`), or `None` for 0 or an unknown id.
pub fn scope_path(id: u32) -> Option<String> {
    scope_segments(id).map(|names| names.join("/"))
}

/// The names of scope `id` and its enclosing scopes, outermost first, or
/// `None` for 0 or an unknown id. A name may hold a `/` (a label such as
/// `route=GET /users/{id}`), so these, not the joined path, say where one
/// scope ends and the next begins.
pub(crate) fn scope_segments(id: u32) -> Option<Vec<&'static str>> {
    let mut names = Vec::new();
    let mut current = id;
    while current != 0 && names.len() < 64 {
        let record = published(current)?;
        names.push(record.name());
        current = record.parent.load(Ordering::Relaxed);
    }
    if names.is_empty() {
        return None;
    }
    names.reverse();
    Some(names)
}

/// Figures for every scope entered so far.
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     let previous = memprof::set_thread_rate(Some(1)); // record exactly
///     let parsed: Vec<u64> = memprof::scope("parser", || (0..1000).collect());
///     memprof::set_thread_rate(previous);
///
///     let parser = memprof::scopes().into_iter().find(|s| s.path == "parser").unwrap();
///     assert!(parser.net_bytes >= 8000.0, "{parser:?}");
///     drop(parsed);
/// }
/// ```
pub fn scopes() -> Vec<ScopeStats> {
    (1..=REGISTERED.load(Ordering::Acquire))
        .map(|id| {
            let r = &RECORDS[id as usize];
            let sum = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            let (alloc_bytes, freed_bytes) = (sum(&r.alloc_bytes), sum(&r.freed_bytes));
            ScopeStats {
                id,
                path: scope_path(id).unwrap_or_default(),
                parent: r.parent.load(Ordering::Relaxed),
                entered: r.entered.load(Ordering::Relaxed),
                alloc_objects: Fixed::objects(sum(&r.alloc_objects)),
                alloc_bytes: Fixed::bytes(alloc_bytes),
                freed_objects: Fixed::objects(sum(&r.freed_objects)),
                freed_bytes: Fixed::bytes(freed_bytes),
                net_bytes: Fixed::bytes(Fixed::in_use(alloc_bytes, freed_bytes)),
                peak_bytes: Fixed::bytes(sum(&r.peak_bytes)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_cache_keys_on_the_parent() {
        let paths: Vec<String> = (0..3)
            .flat_map(|_| {
                let top = {
                    let _x = enter_scope("cache-x");
                    thread_state::scope()
                };
                let nested = {
                    let _y = enter_scope("cache-y");
                    let _x = enter_scope("cache-x");
                    thread_state::scope()
                };
                [top, nested]
            })
            .map(|id| scope_path(id).unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "cache-x",
                "cache-y/cache-x",
                "cache-x",
                "cache-y/cache-x",
                "cache-x",
                "cache-y/cache-x"
            ]
        );
        let x = scopes().into_iter().find(|s| s.path == "cache-x").unwrap();
        assert_eq!(x.entered, 3, "cached entries still count");
    }

    #[test]
    fn nested_scopes_have_paths_and_roll_up() {
        let (outer, inner) = {
            let _a = enter_scope("outer-test");
            let outer = thread_state::scope();
            let _b = enter_scope("inner-test");
            (outer, thread_state::scope())
        };
        assert_eq!(
            thread_state::scope(),
            0,
            "guards restore the previous scope"
        );
        assert_eq!(scope_path(inner).as_deref(), Some("outer-test/inner-test"));
        record_alloc(inner, 100, 2.0);
        record_free(inner, 100, 1.0);
        let all = scopes();
        let o = all.iter().find(|s| s.id == outer).unwrap();
        let i = all.iter().find(|s| s.id == inner).unwrap();
        assert_eq!(i.alloc_bytes, 200.0);
        assert_eq!(o.alloc_bytes, 200.0, "outer includes inner");
        assert_eq!(o.net_bytes, 100.0);
        assert_eq!(o.peak_bytes, 200.0);
    }

    /// Freed in another order than allocated, weights that are not whole:
    /// float sums would leave a residue (about 1e-8 bytes here); the
    /// fixed-point sums return to zero exactly.
    #[test]
    fn everything_freed_leaves_nothing_in_use() {
        let id = {
            let _s = enter_scope("exactly-zero-test");
            thread_state::scope()
        };
        let samples: Vec<(usize, f64)> = (0..1000)
            .map(|i| (1000 + 37 * i, 1.0 + 1.0 / (7 + i) as f64))
            .collect();
        for &(bytes, weight) in samples.iter().rev() {
            record_alloc(id, bytes, weight);
        }
        for &(bytes, weight) in &samples {
            record_free(id, bytes, weight);
        }
        let s = scopes().into_iter().find(|s| s.id == id).unwrap();
        assert_eq!(s.net_bytes, 0.0);
        assert_eq!(s.alloc_bytes, s.freed_bytes);
        assert!(
            (s.peak_bytes - 19_522_235.7).abs() < 1.0,
            "{}",
            s.peak_bytes
        );
    }
}
