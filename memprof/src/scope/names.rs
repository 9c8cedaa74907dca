//! Scope names made at run time: a span's field, a route, a tenant.
//!
//! A `&'static str` name is kept as it is. A runtime name is copied, once,
//! when its scope is first registered, into one arena of mapped memory
//! ([`ARENA_BYTES`], mapped at the first copy and never unmapped, so a
//! record's name stays valid for the process). Entering a known
//! `(parent, name)` again finds it in the registry's index and copies
//! nothing. Nothing here goes through the global allocator: the arena is
//! an `mmap`, and the copy happens under the registry's spin lock.
//!
//! Everything is bounded: a name is cut to [`MAX_NAME_BYTES`] (at a
//! character boundary), and once the registry ([`super::MAX_SCOPES`]) or
//! the arena is full, entering a new name reuses the parent scope, as a
//! full registry does for static names; each such entry is counted
//! ([`ScopeRegistryStats::entries_not_registered`], in `/stats` and
//! `/metrics`).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{register_locked, thread_state, ScopeGuard, INDEX, MAX_SCOPES, RECORDS, REGISTERED};

/// The arena's size: room for every scope and every kept label value
/// (`super::labels`) with a 256-byte name. Only the pages written are
/// resident.
pub(crate) const ARENA_BYTES: usize = 2 * MAX_SCOPES * MAX_NAME_BYTES;

/// The longest runtime name kept; a longer one is cut at a character
/// boundary at or below this many bytes.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// Entries of a scope that could not be registered (the registry or the
/// arena full), which counted towards the parent scope instead.
pub(super) static NOT_REGISTERED: AtomicU64 = AtomicU64::new(0);

/// Bytes copied into the arena, for readers that take no lock.
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

/// A new scope's name: kept as it is, or copied.
pub(super) enum Name<'a> {
    /// A name that lives for the process.
    Static(&'static str),
    /// A name made at run time, copied into the arena if its scope is new.
    Runtime(&'a str),
}

impl Name<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Runtime(name) => name,
        }
    }
}

/// The bump arena runtime names are copied into. Lives in the registry,
/// under its lock.
pub(super) struct NameArena {
    /// The mapping's address; 0 until the first copy maps it.
    base: usize,
    /// Bytes handed out.
    used: usize,
}

impl NameArena {
    pub(super) const fn new() -> NameArena {
        NameArena { base: 0, used: 0 }
    }

    /// The name to store in a new record: a static name as it is, a
    /// runtime one copied. `None` when the arena is full or cannot be
    /// mapped.
    pub(super) fn keep(&mut self, name: Name<'_>) -> Option<&'static str> {
        match name {
            Name::Static(name) => Some(name),
            Name::Runtime(name) => self.copy(name),
        }
    }

    fn copy(&mut self, name: &str) -> Option<&'static str> {
        if self.base == 0 {
            self.base = crate::os::map_zeroed(ARENA_BYTES)?.as_ptr() as usize;
        }
        if name.len() > ARENA_BYTES - self.used {
            return None;
        }
        let at = (self.base + self.used) as *mut u8;
        // SAFETY: `at..at + name.len()` lies inside the arena's mapping
        // (checked above), which is never unmapped and whose bytes past
        // `used` no one else reads or writes (handed out only here, under
        // the registry's lock); the source is a valid `&str` elsewhere.
        let copied = unsafe {
            core::ptr::copy_nonoverlapping(name.as_ptr(), at, name.len());
            core::str::from_utf8_unchecked(core::slice::from_raw_parts(at, name.len()))
        };
        self.used += name.len();
        ARENA_USED.store(self.used, Ordering::Relaxed);
        Some(copied)
    }
}

/// `name` cut to at most `max` bytes, at a character boundary.
pub(super) fn truncated(name: &str, max: usize) -> &str {
    if name.len() <= max {
        return name;
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The id of scope `name` inside `parent`, registering it if new (the name
/// copied into the arena); `parent` when it cannot be registered (counted).
/// Takes the registry's lock; allocates nothing.
pub(crate) fn scope_id(parent: u32, name: &str) -> u32 {
    crate::fork::register();
    let name = truncated(name, MAX_NAME_BYTES);
    let id = register_locked(&mut INDEX.lock(), parent, Name::Runtime(name));
    if id == 0 {
        parent
    } else {
        id
    }
}

/// [`scope_id`] for a name that lives for the process: nothing is copied.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn static_scope_id(parent: u32, name: &'static str) -> u32 {
    match super::register(parent, name) {
        0 => parent,
        id => id,
    }
}

/// Counts an entry of scope `id` in its figures (`entered`).
pub(crate) fn count_entry(id: u32) {
    if id != 0 && (id as usize) < MAX_SCOPES {
        RECORDS[id as usize].entered.fetch_add(1, Ordering::Relaxed);
    }
}

/// Enters scope `name`, a name made at run time, nested inside the current
/// scope, until the guard drops.
///
/// The name is copied once, when its scope is first registered (into an
/// arena of fixed size; a name is cut to 256 bytes); entering the same
/// scope again copies nothing. Each entry takes the registry's lock for a
/// lookup: for a name known at compile time, [`enter_scope`](crate::enter_scope)
/// is cheaper. Past the registry's capacity (4096 scopes) a new name
/// counts towards the enclosing scope, and `/stats` counts such entries
/// (`scope_registry.entries_not_registered`).
///
/// # Examples
///
/// ```
/// let tenant = String::from("tenant=acme");
/// let _guard = memprof::enter_scope_named(&tenant);
/// let buffer = vec![0u8; 1024]; // counts towards the scope "tenant=acme"
/// # drop(buffer);
/// ```
pub fn enter_scope_named(name: &str) -> ScopeGuard {
    let parent = thread_state::scope();
    let id = scope_id(parent, name);
    if id != parent {
        count_entry(id);
    }
    ScopeGuard {
        previous: thread_state::set_scope(id),
        _not_send: core::marker::PhantomData,
    }
}

/// Runs `f` inside scope `name`, a name made at run time (see
/// [`enter_scope_named`]).
pub fn scope_named<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let _guard = enter_scope_named(name);
    f()
}

/// The registry's own figures: how full it is, what could not be
/// registered, and the label keys' distinct values and overflows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ScopeRegistryStats {
    /// Scopes registered.
    pub scopes: u32,
    /// The most scopes the registry holds.
    pub max_scopes: u32,
    /// Entries of a new scope that the full registry (or name arena) could
    /// not hold: each counted towards the enclosing scope instead.
    pub entries_not_registered: u64,
    /// Bytes of runtime names copied into the name arena.
    pub name_arena_bytes: u64,
    /// The name arena's size.
    pub name_arena_capacity_bytes: u64,
    /// Each label key seen (`key` of a `key=value` segment): its distinct
    /// values and the values counted as `~other` past its cap.
    pub labels: Vec<super::LabelKeyStats>,
    /// Label values turned into `~other` because the label table (4096
    /// values over all keys, 64 keys) was full rather than a key's cap.
    pub label_values_not_kept: u64,
}

/// Reads the registry's figures, without taking its lock.
pub fn registry_stats() -> ScopeRegistryStats {
    let name_arena_bytes = ARENA_USED.load(Ordering::Relaxed) as u64;
    ScopeRegistryStats {
        scopes: REGISTERED.load(Ordering::Acquire),
        max_scopes: (MAX_SCOPES - 1) as u32,
        entries_not_registered: NOT_REGISTERED.load(Ordering::Relaxed),
        name_arena_bytes,
        name_arena_capacity_bytes: ARENA_BYTES as u64,
        labels: super::labels::key_stats(),
        label_values_not_kept: super::labels::NOT_KEPT.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Held by the tests that copy names, so one can measure the arena's
    /// growth while the others run.
    pub(in crate::scope) static ARENA: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_runtime_name_is_copied_once_and_found_again() {
        let _arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
        let before = registry_stats().name_arena_bytes;
        let name = String::from("names-test-runtime");
        let first = {
            let _g = enter_scope_named(&name);
            thread_state::scope()
        };
        let copied = registry_stats().name_arena_bytes - before;
        assert_eq!(copied, name.len() as u64);
        // Another buffer with the same text: the same scope, nothing copied.
        let again = String::from("names-test-runtime");
        let second = {
            let _g = enter_scope_named(&again);
            thread_state::scope()
        };
        assert_eq!(first, second);
        assert_eq!(registry_stats().name_arena_bytes - before, copied);
        drop((name, again));
        assert_eq!(
            super::super::scope_path(first).as_deref(),
            Some("names-test-runtime"),
            "the record's name outlives the caller's buffer"
        );
        let s = super::super::scopes()
            .into_iter()
            .find(|s| s.id == first)
            .unwrap();
        assert_eq!(s.entered, 2);
    }

    #[test]
    fn a_static_and_a_runtime_name_of_one_text_are_one_scope() {
        let _arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
        let by_static = {
            let _g = crate::scope::enter_scope("names-test-both");
            thread_state::scope()
        };
        let by_runtime = {
            let _g = enter_scope_named(&String::from("names-test-both"));
            thread_state::scope()
        };
        assert_eq!(by_static, by_runtime);
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let _arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
        let long = "é".repeat(200); // 400 bytes
        let cut = truncated(&long, MAX_NAME_BYTES);
        assert_eq!(cut.len(), 256);
        assert_eq!(truncated("aé", 2), "a");
        let id = scope_id(0, &long);
        assert_eq!(super::super::scope_path(id).unwrap(), "é".repeat(128));
    }
}
