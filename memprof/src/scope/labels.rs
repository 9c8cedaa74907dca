//! Labels: scope path segments `key=value` (`route=GET /users/{id}`,
//! `tenant=acme`), with a cap on the distinct values each key keeps.
//!
//! A field like a user id has as many values as there are users; as scopes,
//! each would take a record and its name for the life of the process, and
//! the per-scope views and metrics would grow with them. So each key keeps
//! its first `cap` distinct values (100 by default, [`DEFAULT_LABEL_CAP`]);
//! a later new value becomes [`OTHER_LABEL_VALUE`] (`tenant=~other`), and
//! the key's overflow counter counts each such use (`/stats`, `/metrics`).
//!
//! The values kept are remembered in a fixed table (at most
//! [`MAX_LABEL_VALUES`] over all keys, [`MAX_LABEL_KEYS`] keys), with their
//! text in the name arena ([`super::names`]), under the registry's lock:
//! nothing allocates, and memory does not grow with the values seen. A
//! value past the table's room is `~other` too, counted in
//! `label_values_not_kept`.

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::names::{truncated, Name, MAX_NAME_BYTES};
use super::{register_locked, thread_state, ScopeGuard, INDEX, MAX_SCOPES};

/// Distinct values a label key keeps unless told otherwise.
pub const DEFAULT_LABEL_CAP: u32 = 100;

/// The value a label gets past its key's cap.
pub const OTHER_LABEL_VALUE: &str = "~other";

/// Label keys remembered; values of later keys are all `~other`.
pub(crate) const MAX_LABEL_KEYS: usize = 64;

/// Values kept over all keys: no more than the scopes they could become.
pub(crate) const MAX_LABEL_VALUES: usize = MAX_SCOPES;

/// The longest key kept in a segment (cut at a character boundary).
const MAX_KEY_BYTES: usize = 64;

/// Slots of the value table: twice the values, so at most half full.
const VALUE_SLOTS: usize = 2 * MAX_LABEL_VALUES;

/// Label values that became `~other` because the table had no room for
/// their key or value (rather than because of the key's cap).
pub(super) static NOT_KEPT: AtomicU64 = AtomicU64::new(0);

/// One label key's figures, read without a lock: the name is written
/// before the key is published through [`KEYS_PUBLISHED`].
struct LabelKey {
    name_ptr: AtomicPtr<u8>,
    name_len: AtomicUsize,
    /// Distinct values kept.
    distinct: AtomicU32,
    /// The cap last asked for.
    cap: AtomicU32,
    /// Uses of `~other` past the cap.
    overflow: AtomicU64,
}

static KEYS: [LabelKey; MAX_LABEL_KEYS] = [const {
    LabelKey {
        name_ptr: AtomicPtr::new(core::ptr::null_mut()),
        name_len: AtomicUsize::new(0),
        distinct: AtomicU32::new(0),
        cap: AtomicU32::new(0),
        overflow: AtomicU64::new(0),
    }
}; MAX_LABEL_KEYS];

/// Keys `0..KEYS_PUBLISHED` have their names written (Release after
/// writing; readers load with Acquire).
static KEYS_PUBLISHED: AtomicU32 = AtomicU32::new(0);

impl LabelKey {
    fn name(&self) -> &'static str {
        let ptr = self.name_ptr.load(Ordering::Relaxed);
        if ptr.is_null() {
            return "";
        }
        // SAFETY: a non-null pointer and its length were copied from one
        // `&'static str` (in the name arena) before the key was published,
        // and never change afterwards; callers read only published keys.
        unsafe {
            core::str::from_utf8_unchecked(core::slice::from_raw_parts(
                ptr,
                self.name_len.load(Ordering::Relaxed),
            ))
        }
    }
}

/// The values kept, under the registry's lock.
pub(super) struct LabelValues {
    /// Open addressing from [`value_home`]: `1 + ` an index into `kept`,
    /// 0 when empty.
    slots: [u32; VALUE_SLOTS],
    /// Each kept value's key (index into [`KEYS`]) and text.
    kept: [(u32, Option<&'static str>); MAX_LABEL_VALUES],
    kept_len: usize,
}

impl LabelValues {
    pub(super) const fn new() -> LabelValues {
        LabelValues {
            slots: [0; VALUE_SLOTS],
            kept: [(0, None); MAX_LABEL_VALUES],
            kept_len: 0,
        }
    }
}

/// Where `(key, value)` starts its probe (FxHash-style).
fn value_home(key: u32, value: &str) -> usize {
    const K: u64 = 0x51_7C_C1_B7_27_22_0A_95;
    let h = value
        .bytes()
        .fold(u64::from(key + 1).wrapping_mul(K), |h, b| {
            (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K)
        });
    (h >> 32) as usize % VALUE_SLOTS
}

/// The index of `key` in [`KEYS`], adding it if new; `None` when there is
/// no room for it.
fn key_index(registry: &mut super::Registry, key: &str) -> Option<u32> {
    let published = KEYS_PUBLISHED.load(Ordering::Relaxed);
    if let Some(i) = (0..published).find(|&i| KEYS[i as usize].name() == key) {
        return Some(i);
    }
    if published as usize >= MAX_LABEL_KEYS {
        return None;
    }
    let name = registry.names.keep(Name::Runtime(key))?;
    let record = &KEYS[published as usize];
    record.name_len.store(name.len(), Ordering::Relaxed);
    record
        .name_ptr
        .store(name.as_ptr().cast_mut(), Ordering::Relaxed);
    // Release: a reader that sees the count sees the name.
    KEYS_PUBLISHED.store(published + 1, Ordering::Release);
    Some(published)
}

/// The value to use for `key=value`: `value` if it is kept for the key (or
/// can be, under `cap`), else [`OTHER_LABEL_VALUE`], counted.
fn admit<'v>(registry: &mut super::Registry, key: &str, value: &'v str, cap: u32) -> &'v str {
    let Some(key) = key_index(registry, key) else {
        NOT_KEPT.fetch_add(1, Ordering::Relaxed);
        return OTHER_LABEL_VALUE;
    };
    let record = &KEYS[key as usize];
    record.cap.store(cap, Ordering::Relaxed);
    let values = &mut registry.labels;
    let mut slot = value_home(key, value);
    loop {
        match values.slots[slot] {
            0 => break,
            at => {
                if values.kept[at as usize - 1] == (key, Some(value)) {
                    return value;
                }
            }
        }
        slot = (slot + 1) % VALUE_SLOTS;
    }
    if record.distinct.load(Ordering::Relaxed) >= cap {
        record.overflow.fetch_add(1, Ordering::Relaxed);
        return OTHER_LABEL_VALUE;
    }
    if values.kept_len == MAX_LABEL_VALUES {
        NOT_KEPT.fetch_add(1, Ordering::Relaxed);
        return OTHER_LABEL_VALUE;
    }
    let Some(text) = registry.names.keep(Name::Runtime(value)) else {
        NOT_KEPT.fetch_add(1, Ordering::Relaxed);
        return OTHER_LABEL_VALUE;
    };
    values.kept[values.kept_len] = (key, Some(text));
    values.kept_len += 1;
    values.slots[slot] = values.kept_len as u32;
    record.distinct.fetch_add(1, Ordering::Relaxed);
    value
}

/// The id of segment `key=value` inside `parent`, where the value is the
/// given one while `key` keeps fewer than `cap` distinct values (or it is
/// one of them), and `~other` past that (counted per key). Registers the
/// segment if new; `parent` when the registry is full (counted). Takes the
/// registry's lock; allocates nothing.
pub(crate) fn label_scope_id(parent: u32, key: &str, value: &str, cap: u32) -> u32 {
    crate::fork::register();
    let key = truncated(key, MAX_KEY_BYTES);
    let value = truncated(value, MAX_NAME_BYTES - key.len() - 1);
    let mut registry = INDEX.lock();
    let value = admit(&mut registry, key, value, cap);
    let mut segment = [0u8; MAX_NAME_BYTES];
    let len = key.len() + 1 + value.len();
    segment[..key.len()].copy_from_slice(key.as_bytes());
    segment[key.len()] = b'=';
    segment[key.len() + 1..len].copy_from_slice(value.as_bytes());
    // Two whole `str`s joined by an ASCII byte.
    let segment = core::str::from_utf8(&segment[..len]).unwrap_or(OTHER_LABEL_VALUE);
    match register_locked(&mut registry, parent, Name::Runtime(segment)) {
        0 => parent,
        id => id,
    }
}

/// Enters the label `key=value` as a scope nested inside the current one,
/// until the guard drops; past `cap` distinct values of `key` (over the
/// whole process), a new value enters `key=~other` instead, and the key's
/// overflow counter counts it.
///
/// Like [`enter_scope_named`](crate::enter_scope_named), each entry takes
/// the registry's lock for a lookup, and the value is copied only the first
/// time it is kept.
///
/// # Examples
///
/// ```
/// let tenant = String::from("acme");
/// let _guard = memprof::enter_label("tenant", &tenant, memprof::DEFAULT_LABEL_CAP);
/// let buffer = vec![0u8; 1024]; // counts towards the scope "tenant=acme"
/// # drop(buffer);
/// ```
pub fn enter_label(key: &str, value: &str, cap: u32) -> ScopeGuard {
    let parent = thread_state::scope();
    let id = label_scope_id(parent, key, value, cap);
    if id != parent {
        super::count_entry(id);
    }
    ScopeGuard {
        previous: thread_state::set_scope(id),
        _not_send: core::marker::PhantomData,
    }
}

/// One label key's figures (`/stats`, `/metrics`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LabelKeyStats {
    /// The key (`route`, `tenant`).
    pub key: String,
    /// The most distinct values the key keeps (the cap last asked for).
    pub cap: u32,
    /// Distinct values kept.
    pub values: u32,
    /// Uses of `~other` because the key had reached its cap.
    pub overflow: u64,
}

/// Every label key's figures, in the order the keys were first seen.
pub(super) fn key_stats() -> Vec<LabelKeyStats> {
    (0..KEYS_PUBLISHED.load(Ordering::Acquire) as usize)
        .map(|i| {
            let k = &KEYS[i];
            LabelKeyStats {
                key: k.name().to_owned(),
                cap: k.cap.load(Ordering::Relaxed),
                values: k.distinct.load(Ordering::Relaxed),
                overflow: k.overflow.load(Ordering::Relaxed),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::scope_path;

    fn key(name: &str) -> LabelKeyStats {
        key_stats().into_iter().find(|k| k.key == name).unwrap()
    }

    #[test]
    fn values_past_the_cap_are_other_and_counted() {
        let _arena = crate::scope::names::tests::ARENA
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ids: Vec<u32> = (0..5)
            .map(|i| label_scope_id(0, "labels-test-user", &format!("u{i}"), 3))
            .collect();
        let paths: Vec<String> = ids.iter().map(|&id| scope_path(id).unwrap()).collect();
        assert_eq!(
            paths,
            [
                "labels-test-user=u0",
                "labels-test-user=u1",
                "labels-test-user=u2",
                "labels-test-user=~other",
                "labels-test-user=~other"
            ]
        );
        // A kept value stays kept after the cap is reached.
        let again = label_scope_id(0, "labels-test-user", "u1", 3);
        assert_eq!(again, ids[1]);
        let k = key("labels-test-user");
        assert_eq!((k.values, k.cap, k.overflow), (3, 3, 2));
    }

    #[test]
    fn a_value_is_one_value_under_every_parent() {
        let _arena = crate::scope::names::tests::ARENA
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let parent_a = crate::scope::names::scope_id(0, "labels-test-a");
        let parent_b = crate::scope::names::scope_id(0, "labels-test-b");
        let under_a = label_scope_id(parent_a, "labels-test-tenant", "acme", 1);
        let under_b = label_scope_id(parent_b, "labels-test-tenant", "acme", 1);
        assert_ne!(under_a, under_b);
        assert_eq!(
            scope_path(under_b).unwrap(),
            "labels-test-b/labels-test-tenant=acme"
        );
        let other = label_scope_id(parent_b, "labels-test-tenant", "globex", 1);
        assert_eq!(
            scope_path(other).unwrap(),
            "labels-test-b/labels-test-tenant=~other"
        );
        let k = key("labels-test-tenant");
        assert_eq!((k.values, k.overflow), (1, 1));
    }

    #[test]
    fn a_long_value_is_cut_to_fit_the_segment() {
        let _arena = crate::scope::names::tests::ARENA
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let value = "v".repeat(1000);
        let id = label_scope_id(0, "labels-test-long", &value, 10);
        let path = scope_path(id).unwrap();
        assert_eq!(path.len(), MAX_NAME_BYTES);
        assert!(path.starts_with("labels-test-long=vvv"));
    }
}
