//! [`Reading`]: one value read from the system, or why it could not be.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// One reading: the value, or the reason it is unavailable.
///
/// Every file memprof reads may be missing (an older kernel, a cgroup
/// controller that is not mounted), unreadable (another user's process) or
/// malformed; none of these is an error for the caller, and none panics. The
/// reason names the file, e.g. `"/proc/pressure/memory: not found"`.
///
/// In JSON an available reading is the value itself, and an unavailable one is
/// `{"unavailable": "<reason>"}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading<T> {
    /// The value was read.
    Available(T),
    /// The value could not be read.
    Unavailable {
        /// Why, naming the file.
        reason: String,
    },
}

impl<T> Reading<T> {
    /// An unavailable reading with this reason.
    pub fn unavailable(reason: impl Into<String>) -> Reading<T> {
        Reading::Unavailable {
            reason: reason.into(),
        }
    }

    /// The value of `Ok`, or the error's text as the reason.
    pub fn from_result<E: fmt::Display>(result: Result<T, E>) -> Reading<T> {
        match result {
            Ok(value) => Reading::Available(value),
            Err(err) => Reading::unavailable(err.to_string()),
        }
    }

    /// The value, if available.
    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Available(value) => Some(value),
            Reading::Unavailable { .. } => None,
        }
    }

    /// The value, if available, by value.
    pub fn into_value(self) -> Option<T> {
        match self {
            Reading::Available(value) => Some(value),
            Reading::Unavailable { .. } => None,
        }
    }

    /// Why the reading is unavailable, or `None` when it is available.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Reading::Available(_) => None,
            Reading::Unavailable { reason } => Some(reason),
        }
    }

    /// Whether the value was read.
    pub fn is_available(&self) -> bool {
        matches!(self, Reading::Available(_))
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> Reading<&T> {
        match self {
            Reading::Available(value) => Reading::Available(value),
            Reading::Unavailable { reason } => Reading::Unavailable {
                reason: reason.clone(),
            },
        }
    }

    /// Transforms the value, keeping the reason of an unavailable reading.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reading<U> {
        match self {
            Reading::Available(value) => Reading::Available(f(value)),
            Reading::Unavailable { reason } => Reading::Unavailable { reason },
        }
    }

    /// Chains a computation that may itself be unavailable.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Reading<U>) -> Reading<U> {
        match self {
            Reading::Available(value) => f(value),
            Reading::Unavailable { reason } => Reading::Unavailable { reason },
        }
    }
}

impl<T, E: fmt::Display> From<Result<T, E>> for Reading<T> {
    fn from(result: Result<T, E>) -> Reading<T> {
        Reading::from_result(result)
    }
}

impl<T: Serialize> Serialize for Reading<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Reading::Available(value) => value.serialize(serializer),
            Reading::Unavailable { reason } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("unavailable", reason)?;
                map.end()
            }
        }
    }
}

/// A memory limit: a number of bytes, or none.
///
/// cgroup v2 writes `max` for no limit; cgroup v1 writes a huge number
/// (`PAGE_COUNTER_MAX` pages, 9223372036854771712 with 4 KiB pages). Both
/// become [`Limit::Unlimited`], which is `"unlimited"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit is set.
    Unlimited,
    /// The limit, in bytes.
    Bytes(u64),
}

impl Limit {
    /// The limit in bytes, or `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Bytes(bytes) => Some(bytes),
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Unlimited => serializer.serialize_str("unlimited"),
            Limit::Bytes(bytes) => serializer.serialize_u64(*bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_value_or_reason() {
        let ok: Reading<u64> = Reading::Available(7);
        let missing: Reading<u64> = Reading::unavailable("/proc/x: not found");
        assert_eq!(serde_json::to_string(&ok).ok().as_deref(), Some("7"));
        assert_eq!(
            serde_json::to_string(&missing).ok().as_deref(),
            Some(r#"{"unavailable":"/proc/x: not found"}"#)
        );
        assert_eq!(
            serde_json::to_string(&Limit::Unlimited).ok().as_deref(),
            Some(r#""unlimited""#)
        );
        assert_eq!(missing.reason(), Some("/proc/x: not found"));
        assert_eq!(ok.map(|v| v * 2).value(), Some(&14));
    }
}
