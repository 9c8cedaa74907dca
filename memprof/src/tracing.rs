//! Spans of the `tracing` ecosystem as scopes (feature `tracing`).
//!
//! [`MemprofLayer`] is a [`tracing_subscriber::Layer`]: the spans it is told
//! to choose become memprof scopes, so what the code allocates while such a
//! span is entered counts towards it, with the same figures as any scope
//! ([`crate::scopes`], `/stats`, `/metrics`, flamegraph root frames).
//!
//! * **The path follows the span tree**: a chosen span's scope sits inside
//!   the scope of its nearest chosen ancestor span (whatever thread that
//!   one was entered on), and is named by the span's name.
//! * **Label fields** named with [`MemprofLayer::label_fields`] become
//!   segments `key=value` below the span's name (`request/route=GET
//!   /users/{id}/tenant=acme`), in the order the fields were named. Each
//!   key keeps at most [`MemprofLayer::label_cap`] distinct values over the
//!   process (100 by default); a later value becomes `~other` and is
//!   counted in the key's overflow (`/stats` `scope_registry.labels`,
//!   `/metrics` `memprof_scope_label_overflow_total`). Fields are read when
//!   the span is created: a value recorded later (`Span::record`) is not.
//! * **Enter and exit**: entering a span makes its scope the thread's,
//!   exiting restores what was before. `tracing::Instrument` enters the
//!   span around every `poll` of a future, so a future's allocations count
//!   towards its span on whichever thread polls it, across `.await`.
//!
//! Cost: the scope id is worked out once, when the span is created (a
//! lookup in the scope registry under its lock, plus the labels'); entering
//! and exiting read it from the span's extensions and swap one
//! thread-local cell (`benches/tracing_layer.rs`; figures in the README).
//!
//! Without `MemProf` as the global allocator nothing is counted: building a
//! layer says so once on stderr, and `/stats` carries the same `warning` as
//! every view.

use core::cell::Cell;
use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicBool, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::{Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::scope::{self, DEFAULT_LABEL_CAP};
use crate::thread_state;

/// The field that chooses a span whatever the layer's filters say:
/// `info_span!("ingest", memprof.scope = true)`.
pub const SCOPE_FIELD: &str = "memprof.scope";

/// The most label fields a layer reads from a span; later ones are ignored.
pub const MAX_LABEL_FIELDS: usize = 8;

/// The longest label value read from a field (longer ones are cut).
const MAX_VALUE_BYTES: usize = 192;

/// Chosen spans a thread can have entered at once; a span entered deeper
/// than this leaves the thread's scope as it is (and its exit too).
const MAX_ENTERED: usize = 32;

/// Makes chosen `tracing` spans memprof scopes; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let layer = memprof::tracing::MemprofLayer::new()
///     .spans(["request"])
///     .label_fields(["route", "tenant"]);
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("request", route = "GET /users/{id}", tenant = "acme");
///     let _entered = span.enter();
///     let user: Vec<u8> = vec![0; 1024]; // counts towards request/route=GET /users/{id}/tenant=acme
///     # drop(user);
/// });
/// ```
pub struct MemprofLayer {
    span_names: Vec<String>,
    target_prefixes: Vec<String>,
    filter: Option<SpanFilter>,
    label_fields: Vec<String>,
    label_cap: u32,
}

/// A user's test of a span's metadata.
type SpanFilter = Box<dyn Fn(&Metadata<'_>) -> bool + Send + Sync>;

impl Default for MemprofLayer {
    fn default() -> Self {
        MemprofLayer::new()
    }
}

impl fmt::Debug for MemprofLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemprofLayer")
            .field("span_names", &self.span_names)
            .field("target_prefixes", &self.target_prefixes)
            .field("filter", &self.filter.is_some())
            .field("label_fields", &self.label_fields)
            .field("label_cap", &self.label_cap)
            .finish()
    }
}

/// Set once a layer has said that `MemProf` is not the global allocator.
static WARNED: AtomicBool = AtomicBool::new(false);

impl MemprofLayer {
    /// A layer that chooses only spans with the field `memprof.scope =
    /// true`; add names, targets or a filter to choose more.
    ///
    /// When `MemProf` is not the global allocator, says once on stderr that
    /// spans will show no bytes, and what line to add.
    pub fn new() -> MemprofLayer {
        if !crate::sample::serves_global_allocator() && !WARNED.swap(true, Ordering::Relaxed) {
            eprintln!(
                "memprof: MemprofLayer turns spans into scopes, but {}",
                crate::sample::NOT_GLOBAL_ALLOCATOR
            );
        }
        MemprofLayer {
            span_names: Vec::new(),
            target_prefixes: Vec::new(),
            filter: None,
            label_fields: Vec::new(),
            label_cap: DEFAULT_LABEL_CAP,
        }
    }

    /// Also chooses the spans with one of these names (`info_span!("request")`
    /// is named `request`).
    pub fn spans<I: IntoIterator<Item = N>, N: Into<String>>(mut self, names: I) -> Self {
        self.span_names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Also chooses the spans whose target (by default the module path
    /// they are created in) starts with one of these prefixes.
    pub fn targets<I: IntoIterator<Item = N>, N: Into<String>>(mut self, prefixes: I) -> Self {
        self.target_prefixes
            .extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// Also chooses the spans for which `filter` returns true.
    pub fn filter(
        mut self,
        filter: impl Fn(&Metadata<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Fields that become label segments `field=value` of a chosen span's
    /// scope, in this order (at most [`MAX_LABEL_FIELDS`]). A field the
    /// span does not have adds no segment.
    pub fn label_fields<I: IntoIterator<Item = N>, N: Into<String>>(mut self, fields: I) -> Self {
        self.label_fields.extend(fields.into_iter().map(Into::into));
        self.label_fields.truncate(MAX_LABEL_FIELDS);
        self
    }

    /// The most distinct values each label key keeps (default 100); a
    /// later new value is `~other`, counted. The count is per key over the
    /// whole process, whichever layer or call made the values.
    pub fn label_cap(mut self, cap: u32) -> Self {
        self.label_cap = cap;
        self
    }

    /// Whether a span with this metadata is chosen by name, target or the
    /// user's filter (the field is checked per span).
    fn chooses(&self, metadata: &Metadata<'_>) -> bool {
        self.span_names.iter().any(|n| n == metadata.name())
            || self
                .target_prefixes
                .iter()
                .any(|p| metadata.target().starts_with(p.as_str()))
            || self.filter.as_ref().is_some_and(|f| f(metadata))
    }
}

/// A chosen span's scope, kept in its extensions.
struct SpanScope {
    id: u32,
}

/// A label value formatted into a fixed buffer, cut at
/// [`MAX_VALUE_BYTES`] (at a character boundary).
struct ValueBuffer {
    bytes: [u8; MAX_VALUE_BYTES],
    len: usize,
    set: bool,
}

impl ValueBuffer {
    const fn new() -> ValueBuffer {
        ValueBuffer {
            bytes: [0; MAX_VALUE_BYTES],
            len: 0,
            set: false,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole characters are written (see `write_str`).
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for ValueBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_VALUE_BYTES - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Reads `memprof.scope` and the label fields of a new span, without
/// allocating.
struct SpanFields<'a> {
    label_fields: &'a [String],
    values: [ValueBuffer; MAX_LABEL_FIELDS],
    scope_field: bool,
}

impl SpanFields<'_> {
    fn value_for(&mut self, field: &Field) -> Option<&mut ValueBuffer> {
        let i = self.label_fields.iter().position(|f| f == field.name())?;
        let value = &mut self.values[i];
        value.len = 0;
        value.set = true;
        Some(value)
    }
}

impl Visit for SpanFields<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == SCOPE_FIELD {
            self.scope_field = value;
        }
        if let Some(buffer) = self.value_for(field) {
            let _ = write!(buffer, "{value}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(buffer) = self.value_for(field) {
            let _ = buffer.write_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(buffer) = self.value_for(field) {
            let _ = write!(buffer, "{value:?}");
        }
    }
}

thread_local! {
    /// The chosen spans this thread has entered, innermost last: each
    /// span's id and the scope to restore when it exits.
    static ENTERED: [Cell<(u64, u32)>; MAX_ENTERED] =
        const { [const { Cell::new((0, 0)) }; MAX_ENTERED] };
    static ENTERED_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Makes `scope` the thread's, remembering what to restore when `span`
/// exits; does nothing past [`MAX_ENTERED`].
fn enter(span: u64, scope: u32) {
    let _ = ENTERED_DEPTH.try_with(|depth| {
        let d = depth.get();
        if d < MAX_ENTERED {
            let previous = thread_state::set_scope(scope);
            let _ = ENTERED.try_with(|entered| entered[d].set((span, previous)));
            depth.set(d + 1);
        }
    });
}

/// Restores the scope from before `span` was entered (the innermost such
/// entry), if this thread entered it.
fn exit(span: u64) {
    let _ = ENTERED_DEPTH.try_with(|depth| {
        let _ = ENTERED.try_with(|entered| {
            let d = depth.get();
            let Some(at) = (0..d).rev().find(|&i| entered[i].get().0 == span) else {
                return;
            };
            let (_, previous) = entered[at].get();
            if at + 1 == d {
                thread_state::set_scope(previous);
            } else {
                // Exited out of order: the span entered next after it
                // restores what this one would have.
                let (next_span, _) = entered[at + 1].get();
                entered[at + 1].set((next_span, previous));
            }
            for i in at..d - 1 {
                entered[i].set(entered[i + 1].get());
            }
            depth.set(d - 1);
        });
    });
}

impl<S> tracing_subscriber::Layer<S> for MemprofLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        let mut fields = SpanFields {
            label_fields: &self.label_fields,
            values: [const { ValueBuffer::new() }; MAX_LABEL_FIELDS],
            scope_field: false,
        };
        attrs.record(&mut fields);
        if !fields.scope_field && !self.chooses(metadata) {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span
            .scope()
            .skip(1)
            .find_map(|ancestor| ancestor.extensions().get::<SpanScope>().map(|s| s.id))
            .unwrap_or(0);
        let mut scope_id = scope::static_scope_id(parent, metadata.name());
        for (key, value) in self.label_fields.iter().zip(&fields.values) {
            if value.set {
                scope_id = scope::label_scope_id(scope_id, key, value.as_str(), self.label_cap);
            }
        }
        if scope_id != parent {
            scope::count_entry(scope_id);
        }
        span.extensions_mut().insert(SpanScope { id: scope_id });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let scope_id = span.extensions().get::<SpanScope>().map(|s| s.id);
        if let Some(scope_id) = scope_id {
            enter(id.into_u64(), scope_id);
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        exit(id.into_u64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_cut_at_a_character_boundary() {
        let mut buffer = ValueBuffer::new();
        let _ = buffer.write_str(&"é".repeat(MAX_VALUE_BYTES));
        assert_eq!(buffer.as_str(), "é".repeat(MAX_VALUE_BYTES / 2));
        let _ = buffer.write_str("more");
        assert_eq!(buffer.len, MAX_VALUE_BYTES);
    }

    #[test]
    fn exits_restore_the_scope_from_before_each_entry() {
        let before = thread_state::set_scope(7);
        enter(1, 10);
        enter(2, 20);
        assert_eq!(thread_state::scope(), 20);
        exit(2);
        assert_eq!(thread_state::scope(), 10);
        exit(1);
        assert_eq!(thread_state::scope(), 7);
        // Out of order: 1 exits while 2 is still entered; when 2 exits,
        // the thread is back where it was before 1.
        enter(1, 10);
        enter(2, 20);
        exit(1);
        assert_eq!(thread_state::scope(), 20, "2 is still entered");
        exit(2);
        assert_eq!(thread_state::scope(), 7);
        exit(3);
        assert_eq!(thread_state::scope(), 7, "a span never entered here");
        thread_state::set_scope(before);
    }
}
