//! Turning return addresses into function names, files and lines.
//!
//! Symbolization is slow (it parses DWARF) and allocates freely, so it never
//! runs on the allocation path: snapshots call it, on the thread that asked.
//! Results are cached per address; the cache holds at most
//! [`MAX_CACHED_ADDRESSES`] addresses and is emptied when full.
//!
//! The `backtrace` crate keeps every library's parsed debug info for as long
//! as the process runs: tens of MiB for a mid-sized service, far more than
//! the per-address results, and invisible to a profiler that only counts its
//! own tables. So a run of lookups that had to parse ends by dropping that
//! parsed state ([`backtrace::clear_symbol_cache`]): a later run that meets
//! new addresses parses again (tens of milliseconds for a 26 MB binary),
//! and between runs only the per-address results stay. What the symbolizer
//! holds is measured, not estimated, where jemalloc serves the process: the
//! net bytes its lookups allocated on their thread (see [`cache_bytes`]).
//!
//! A child forked while another thread was symbolizing, or while a thread
//! of the program's own was inside the `backtrace` crate, names frames (the
//! uncached ones, in the second case) by address only (see `fork`).

mod fork;

pub(crate) use fork::{after_fork_in_child, after_fork_in_parent, prepare_fork};

use super::role::{frame_role, FrameRole};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One frame of a symbolized stack. An address whose code was inlined
/// resolves to several frames, innermost first, sharing the address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// Demangled function name without the hash suffix, or `0x…` if unknown.
    pub function: String,
    /// Source file, where debug info has it.
    pub file: Option<String>,
    /// Source line, where debug info has it.
    pub line: Option<u32>,
    /// The return address this frame came from (process-specific).
    pub address: u64,
}

impl Frame {
    /// A frame known only by its name: a scope, a placeholder such as
    /// `[unknown]`, a test's made-up stack.
    pub(crate) fn named(function: impl Into<String>) -> Arc<Frame> {
        Arc::new(Frame {
            function: function.into(),
            file: None,
            line: None,
            address: 0,
        })
    }
}

/// The most addresses kept in the cache before it is emptied.
pub(crate) const MAX_CACHED_ADDRESSES: usize = 1 << 17;

struct Cache {
    frames: HashMap<usize, Resolved, crate::hash::AddressHash>,
    /// An estimate of the results' bytes: strings plus entry overhead.
    bytes: usize,
    /// Net bytes allocated by lookups and released by clearing, measured
    /// through the allocator's per-thread counters; `None` where they
    /// cannot be read (jemalloc does not serve the process).
    measured_bytes: Option<i64>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Bytes the symbolizer holds between lookups: measured where jemalloc
/// serves the process (its per-address results and whatever the debug-info
/// parser left), else an estimate of the per-address results.
pub fn cache_bytes() -> usize {
    crate::fork::register();
    if fork::unavailable() {
        return 0;
    }
    CACHE
        .lock()
        .map(|c| c.as_ref().map_or(0, Cache::held_bytes))
        .unwrap_or(0)
}

impl Cache {
    fn held_bytes(&self) -> usize {
        match self.measured_bytes {
            Some(bytes) => usize::try_from(bytes).unwrap_or(0),
            None => self.bytes,
        }
    }

    /// Adds what the code between two readings of [`net_allocated`] kept.
    fn account(&mut self, before: Option<i64>, after: Option<i64>) {
        if let (Some(before), Some(after)) = (before, after) {
            let held = self.measured_bytes.get_or_insert(0);
            *held = held.saturating_add(after.wrapping_sub(before));
        }
    }
}

/// This thread's bytes allocated less freed, where the allocator counts
/// them per thread.
fn net_allocated() -> Option<i64> {
    #[cfg(feature = "jemalloc")]
    {
        crate::jemalloc::thread_net_allocated()
    }
    #[cfg(not(feature = "jemalloc"))]
    {
        None
    }
}

/// Symbolizes one return address (innermost frame first).
pub fn resolve(address: usize) -> Arc<[Arc<Frame>]> {
    Symbolizer::lock().resolve(address).frames
}

/// One address's frames, innermost first, and the part each plays (see
/// [`FrameRole`]), worked out once when the address is first resolved.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub(crate) frames: Arc<[Arc<Frame>]>,
    /// Bit `i` is set when `frames[i]` is a profiler frame; frames past the
    /// 64th count as the program's.
    profiler: u64,
    /// Bit `i` is set when `frames[i]` is a library frame.
    library: u64,
}

impl Resolved {
    fn new(frames: Arc<[Arc<Frame>]>) -> Resolved {
        let (mut profiler, mut library) = (0, 0);
        for (i, frame) in frames.iter().take(64).enumerate() {
            match frame_role(frame) {
                FrameRole::Profiler => profiler |= 1 << i,
                FrameRole::Library => library |= 1 << i,
                FrameRole::Program => {}
            }
        }
        Resolved {
            frames,
            profiler,
            library,
        }
    }

    /// The part `frames[i]` plays.
    pub(crate) fn role(&self, i: usize) -> FrameRole {
        if i >= 64 {
            FrameRole::Program
        } else if self.profiler & 1 << i != 0 {
            FrameRole::Profiler
        } else if self.library & 1 << i != 0 {
            FrameRole::Library
        } else {
            FrameRole::Program
        }
    }
}

/// The symbol cache, held for a run of lookups: a snapshot resolves every
/// address of every stack under one lock instead of one lock each, and
/// reads each address's profiler frames from the cache instead of scanning
/// names and paths again.
///
/// `None` in a child forked while another thread held the cache: it
/// resolves nothing and names each frame by its address.
pub(crate) struct Symbolizer {
    cache: Option<MutexGuard<'static, Option<Cache>>>,
    /// Whether this run resolved an address the cache did not have, so the
    /// debug-info parser holds state to drop at the end.
    parsed: bool,
}

impl Symbolizer {
    /// Locks the cache until the symbolizer is dropped.
    pub(crate) fn lock() -> Symbolizer {
        crate::fork::register();
        if fork::unavailable() {
            return Symbolizer {
                cache: None,
                parsed: false,
            };
        }
        Symbolizer {
            cache: Some(CACHE.lock().unwrap_or_else(|e| e.into_inner())),
            parsed: false,
        }
    }

    /// Symbolizes one return address, from the cache when it can.
    pub(crate) fn resolve(&mut self, address: usize) -> Resolved {
        let Some(cache) = self.cache.as_mut() else {
            return Resolved::new(unresolved(address));
        };
        let cache = cache.get_or_insert_with(|| Cache {
            frames: HashMap::default(),
            bytes: 0,
            measured_bytes: None,
        });
        if let Some(resolved) = cache.frames.get(&address) {
            return resolved.clone();
        }
        if !fork::backtrace_usable() {
            return Resolved::new(unresolved(address));
        }
        if cache.frames.len() >= MAX_CACHED_ADDRESSES {
            // Both caches empty: what the symbolizer holds starts again
            // from nothing (results still shared with a snapshot are that
            // snapshot's memory now).
            cache.frames = HashMap::default();
            backtrace::clear_symbol_cache();
            cache.bytes = 0;
            cache.measured_bytes = cache.measured_bytes.map(|_| 0);
        }
        self.parsed = true;
        let before = net_allocated();
        let resolved = Resolved::new(resolve_uncached(address));
        cache.bytes += 64
            + resolved
                .frames
                .iter()
                .map(|f| 64 + f.function.len() + f.file.as_ref().map_or(0, String::len))
                .sum::<usize>();
        cache.frames.insert(address, resolved.clone());
        cache.account(before, net_allocated());
        resolved
    }
}

impl Drop for Symbolizer {
    /// Drops the debug-info parser's state if this run made any, while the
    /// cache is still locked (no other run is parsing).
    fn drop(&mut self) {
        if !self.parsed {
            return;
        }
        if let Some(Some(cache)) = self.cache.as_deref_mut() {
            let before = net_allocated();
            backtrace::clear_symbol_cache();
            cache.account(before, net_allocated());
        }
    }
}

fn resolve_uncached(address: usize) -> Arc<[Arc<Frame>]> {
    let mut frames = Vec::new();
    // A return address points after the call; look up the call itself.
    let lookup = address.saturating_sub(1);
    backtrace::resolve(lookup as *mut core::ffi::c_void, |symbol| {
        let function = match symbol.name() {
            Some(name) => format!("{name:#}"),
            None => format!("{address:#x}"),
        };
        frames.push(Arc::new(Frame {
            function,
            file: symbol.filename().map(|p| p.display().to_string()),
            line: symbol.lineno(),
            address: address as u64,
        }));
    });
    if frames.is_empty() {
        return unresolved(address);
    }
    frames.into()
}

/// The one frame of an address nothing could be found for, named `0x…`.
fn unresolved(address: usize) -> Arc<[Arc<Frame>]> {
    Arc::new([Arc::new(Frame {
        function: format!("{address:#x}"),
        file: None,
        line: None,
        address: address as u64,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_named_function() -> usize {
        let mut buf = [0usize; crate::config::MAX_FRAMES];
        let n = crate::stack::capture::tests_support_unwind(&mut buf);
        buf[..n].get(1).copied().unwrap_or(0)
    }

    fn frame(function: &str, file: Option<&str>) -> Frame {
        Frame {
            function: function.to_string(),
            file: file.map(str::to_string),
            line: None,
            address: 0,
        }
    }

    #[test]
    fn resolved_addresses_remember_the_role_of_each_frame() {
        let frames: Arc<[Arc<Frame>]> = [
            frame("__rust_alloc", None),
            frame("grow", Some("/rustc/abc/library/alloc/src/raw_vec.rs")),
            frame("record", Some("/x/memprof/src/alloc/record.rs")),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let resolved = Resolved::new(frames);
        let roles: Vec<FrameRole> = (0..4).map(|i| resolved.role(i)).collect();
        use FrameRole::*;
        assert_eq!(roles, [Library, Library, Profiler, Program]);
        assert_eq!(resolved.role(64), Program);
        assert_eq!(resolved.role(usize::MAX), Program);

        // A cached address answers from the cache, frames shared.
        let addr = a_named_function();
        let mut symbolizer = Symbolizer::lock();
        let first = symbolizer.resolve(addr);
        let again = symbolizer.resolve(addr);
        assert!(Arc::ptr_eq(&first.frames, &again.frames));
        assert_eq!(
            (first.profiler, first.library),
            (again.profiler, again.library)
        );
    }

    /// The child's exit code, or `None` if it was still running after
    /// `timeout` (it is killed then).
    fn exit_code_within(pid: libc::pid_t, timeout: std::time::Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` is a valid out-pointer.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            }
            if start.elapsed() > timeout {
                // SAFETY: as above; reap what we kill.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_child_forked_while_another_thread_symbolizes_does_not_block() {
        let addr = a_named_function();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let symbolizer = Symbolizer::lock();
            held_tx.send(()).unwrap();
            let _ = done_rx.recv();
            drop(symbolizer);
        });
        held_rx.recv().unwrap();
        // SAFETY: the child only symbolizes and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let frames = resolve(addr);
            let by_address = frames.len() == 1 && frames[0].function == format!("{addr:#x}");
            // SAFETY: ends the child without running the test harness's exit.
            unsafe { libc::_exit(if by_address { 0 } else { 3 }) };
        }
        let code = exit_code_within(pid, std::time::Duration::from_secs(20));
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(
            code,
            Some(0),
            "the child blocked (None) or resolved names (3)"
        );
        // The parent's cache is untouched and works on.
        assert!(!fork::unavailable());
        assert_ne!(resolve(addr)[0].function, format!("{addr:#x}"));
    }

    #[inline(never)]
    fn a_function_resolved_only_in_the_child() -> usize {
        a_named_function()
    }

    /// backtrace's own lock, taken by a thread of the program's (not by
    /// memprof) at the fork: the child neither blocks nor calls into the
    /// crate, and names addresses it has not cached by address.
    #[test]
    fn a_child_forked_while_the_program_is_inside_backtrace_does_not_block() {
        // In a program memprof's handlers are registered by its first
        // sample, long before any fork; run alone, this test may fork first.
        crate::fork::register();
        let fresh = a_function_resolved_only_in_the_child();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut once = Some((held_tx, done_rx));
            backtrace::trace(|_| {
                if let Some((held, done)) = once.take() {
                    held.send(()).unwrap();
                    let _ = done.recv();
                }
                false
            });
        });
        held_rx.recv().unwrap();
        // SAFETY: the child only symbolizes and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let frames = resolve(fresh);
            let by_address = frames.len() == 1 && frames[0].function == format!("{fresh:#x}");
            // SAFETY: ends the child without running the test harness's exit.
            unsafe { libc::_exit(if by_address { 0 } else { 3 }) };
        }
        let code = exit_code_within(pid, fork::PROBE_TIMEOUT * 10);
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(
            code,
            Some(0),
            "the child blocked (None) or resolved names (3)"
        );
        assert_ne!(resolve(fresh)[0].function, format!("{fresh:#x}"));
    }

    #[test]
    fn resolves_names() {
        let addr = a_named_function();
        assert_ne!(addr, 0);
        let frames = resolve(addr);
        assert!(!frames.is_empty());
        assert!(cache_bytes() > 0);
    }
}
