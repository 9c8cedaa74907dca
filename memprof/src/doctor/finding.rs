//! [`Finding`]: what a rule saw, what it means and what to try.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::human::format_bytes_signed;

/// How urgent a finding is. Orders from [`Severity::Info`] (lowest) to
/// [`Severity::Critical`] (highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is wrong yet.
    Info,
    /// Something costs memory or latency now, or will soon.
    Warning,
    /// Memory is running out, or processes are being killed.
    Critical,
}

impl Severity {
    /// `"info"`, `"warning"` or `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit of an [`Evidence`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Bytes per second.
    BytesPerSecond,
    /// Bytes per minute.
    BytesPerMinute,
    /// A plain ratio (`1.25` = 125 %).
    Ratio,
    /// A percentage (`12.5` = 12.5 %).
    Percent,
    /// Events per second.
    PerSecond,
    /// A count of things (events, pages, blocks).
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// No unit: a setting or a name.
    None,
}

/// The value of an [`Evidence`]: a number or a word (a setting such as
/// `always`). In JSON it is the number or the string itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number in the evidence's unit.
    Number(f64),
    /// A setting or name.
    Text(String),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Number(n) if n.is_finite() => serializer.serialize_f64(*n),
            Value::Number(_) => serializer.serialize_none(),
            Value::Text(t) => serializer.serialize_str(t),
        }
    }
}

/// One number a rule looked at, named as the source names it where it can
/// be (`allocator_frag_ratio`, `SUnreclaim`, `oom_kill`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// What the number is.
    pub name: String,
    /// The number (or setting).
    pub value: Value,
    /// Its unit.
    pub unit: Unit,
}

impl Evidence {
    /// A number with its unit.
    pub fn number(name: impl Into<String>, value: f64, unit: Unit) -> Evidence {
        Evidence {
            name: name.into(),
            value: Value::Number(value),
            unit,
        }
    }

    /// A byte count.
    pub fn bytes(name: impl Into<String>, bytes: u64) -> Evidence {
        Evidence::number(name, bytes as f64, Unit::Bytes)
    }

    /// A setting or name.
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Evidence {
        Evidence {
            name: name.into(),
            value: Value::Text(text.into()),
            unit: Unit::None,
        }
    }

    /// The value as a number, if it is one.
    pub fn as_number(&self) -> Option<f64> {
        match self.value {
            Value::Number(n) => Some(n),
            Value::Text(_) => None,
        }
    }

    /// The value with its unit, for people: `12.0 MiB`, `1.34`, `5.2 %`,
    /// `always`.
    pub fn display_value(&self) -> String {
        let n = match &self.value {
            Value::Text(t) => return t.clone(),
            Value::Number(n) => *n,
        };
        match self.unit {
            Unit::Bytes => format_bytes_signed(n),
            Unit::BytesPerSecond => format!("{}/s", format_bytes_signed(n)),
            Unit::BytesPerMinute => format!("{}/min", format_bytes_signed(n)),
            Unit::Ratio => format!("{n:.2}"),
            Unit::Percent => format!("{n:.1} %"),
            Unit::PerSecond => format!("{} /s", format_number(n)),
            Unit::Count => format_number(n),
            Unit::Milliseconds => format!("{} ms", format_number(n)),
            Unit::Seconds => format!("{} s", format_number(n)),
            Unit::None => format_number(n),
        }
    }
}

/// What one rule found: how urgent, the numbers it saw, what they mean and
/// what to try.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule's stable id, e.g. `allocator-fragmentation`.
    pub rule: &'static str,
    /// How urgent.
    pub severity: Severity,
    /// One line saying what is wrong.
    pub title: String,
    /// The numbers seen.
    pub evidence: Vec<Evidence>,
    /// What the numbers mean.
    pub meaning: String,
    /// What to try.
    pub advice: String,
}

impl Finding {
    /// The evidence named `name`, if any.
    pub fn evidence(&self, name: &str) -> Option<&Evidence> {
        self.evidence.iter().find(|e| e.name == name)
    }
}

/// A count or rate: integers as integers, others with two decimals at most.
fn format_number(n: f64) -> String {
    if !n.is_finite() {
        "?".to_owned()
    } else if (n.fract() == 0.0 && n.abs() < 1e15) || n.abs() >= 100.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_for_people() {
        assert_eq!(Evidence::bytes("x", 10 << 20).display_value(), "10.0 MiB");
        assert_eq!(
            Evidence::number("x", -2048.0, Unit::Bytes).display_value(),
            "-2.00 KiB"
        );
        assert_eq!(
            Evidence::number("x", 1.234, Unit::Ratio).display_value(),
            "1.23"
        );
        assert_eq!(Evidence::text("x", "always").display_value(), "always");
    }

    #[test]
    fn severities_order_and_serialize() {
        assert!(Severity::Critical > Severity::Warning);
        assert!(Severity::Warning > Severity::Info);
        let e = Evidence::number("x", f64::NAN, Unit::Ratio);
        assert_eq!(
            serde_json::to_string(&e).ok().as_deref(),
            Some(r#"{"name":"x","value":null,"unit":"ratio"}"#)
        );
        assert_eq!(
            serde_json::to_string(&Severity::Critical).ok().as_deref(),
            Some(r#""critical""#)
        );
    }
}
