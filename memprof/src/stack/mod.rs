//! Stacks: capturing return addresses without allocating, interning them,
//! and symbolizing them lazily, off the allocation path.

pub(crate) mod capture;
pub(crate) mod limits;
pub(crate) mod role;
pub(crate) mod symbolize;
pub(crate) mod table;

pub(crate) use capture::frame_limit;
pub use capture::unwinder;
pub(crate) use capture::Unwinder;
pub use role::Trim;
pub(crate) use role::{frame_role, FrameRole};
pub use symbolize::Frame;
pub(crate) use table::{StackTable, OVERFLOW_STACK};

/// Every interned stack of the process.
pub(crate) static STACKS: StackTable = StackTable::new();

/// Pseudo return addresses at the very top of the address space stand for
/// scopes (see [`crate::scope`]); no code lives there.
const SCOPE_MARKER_BASE: usize = usize::MAX - crate::scope::MAX_SCOPES;

/// The pseudo-frame at the root of a stack cut at the depth limit (just
/// below the scope markers; scope 0 is never marked).
pub(crate) const TRUNCATED_MARKER: usize = SCOPE_MARKER_BASE;

/// The pseudo-frame recording `scope` at the root of a stack.
pub(crate) fn scope_marker(scope: u32) -> usize {
    SCOPE_MARKER_BASE + scope as usize
}

/// The scope a pseudo-frame stands for, if it is one.
pub(crate) fn scope_of_marker(address: usize) -> Option<u32> {
    (address > SCOPE_MARKER_BASE).then(|| (address - SCOPE_MARKER_BASE) as u32)
}
