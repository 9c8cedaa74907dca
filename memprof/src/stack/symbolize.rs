//! Turning return addresses into function names, files and lines.
//!
//! Symbolization is slow (it parses DWARF) and allocates freely, so it never
//! runs on the allocation path: snapshots call it, on the thread that asked.
//! Results are cached per address; the cache holds at most
//! [`MAX_CACHED_ADDRESSES`] addresses and is emptied when full, so its memory
//! stays bounded. Its size is reported in the profiler's own memory.
//!
//! A child forked while another thread was symbolizing, or while a thread
//! of the program's own was inside the `backtrace` crate, names frames (the
//! uncached ones, in the second case) by address only (see `fork`).

mod fork;

pub(crate) use fork::{after_fork_in_child, after_fork_in_parent, prepare_fork};

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
pub const MAX_CACHED_ADDRESSES: usize = 1 << 17;

struct Cache {
    frames: HashMap<usize, Resolved, crate::hash::AddressHash>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Bytes held by the symbol cache (an estimate: strings plus entry overhead).
pub fn cache_bytes() -> usize {
    crate::fork::register();
    if fork::unavailable() {
        return 0;
    }
    CACHE
        .lock()
        .map(|c| c.as_ref().map_or(0, |c| c.bytes))
        .unwrap_or(0)
}

/// Symbolizes one return address (innermost frame first).
pub fn resolve(address: usize) -> Arc<[Arc<Frame>]> {
    Symbolizer::lock().resolve(address).frames
}

/// One address's frames, innermost first, and which of them are the
/// profiler's own, worked out once when the address is first resolved.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub(crate) frames: Arc<[Arc<Frame>]>,
    /// Bit `i` is set when `frames[i]` is a profiler frame (see
    /// [`is_profiler_frame`]); frames past the 64th count as the program's.
    profiler: u64,
}

impl Resolved {
    fn new(frames: Arc<[Arc<Frame>]>) -> Resolved {
        let profiler = frames
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, f)| is_profiler_frame(f))
            .fold(0, |mask, (i, _)| mask | 1 << i);
        Resolved { frames, profiler }
    }

    /// Whether `frames[i]` is a profiler frame.
    pub(crate) fn is_profiler(&self, i: usize) -> bool {
        i < 64 && self.profiler & 1 << i != 0
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
}

impl Symbolizer {
    /// Locks the cache until the symbolizer is dropped.
    pub(crate) fn lock() -> Symbolizer {
        crate::fork::register();
        if fork::unavailable() {
            return Symbolizer { cache: None };
        }
        Symbolizer {
            cache: Some(CACHE.lock().unwrap_or_else(|e| e.into_inner())),
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
        });
        if let Some(resolved) = cache.frames.get(&address) {
            return resolved.clone();
        }
        if !fork::backtrace_usable() {
            return Resolved::new(unresolved(address));
        }
        if cache.frames.len() >= MAX_CACHED_ADDRESSES {
            cache.frames.clear();
            cache.bytes = 0;
        }
        let resolved = Resolved::new(resolve_uncached(address));
        cache.bytes += 64
            + resolved
                .frames
                .iter()
                .map(|f| 64 + f.function.len() + f.file.as_ref().map_or(0, String::len))
                .sum::<usize>();
        cache.frames.insert(address, resolved.clone());
        resolved
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

/// Whether a frame belongs to the allocation machinery rather than to the
/// code that asked for memory: memprof's sampler, the unwinder, libgcc, and
/// the global allocator shims. Such frames are trimmed from the leaf end.
///
/// Inlined frames often carry only a short name (`record`, `trace`), so the
/// source file decides for them: memprof's `alloc`, `stack` and `sample`
/// modules and the backtrace crate's sources.
pub fn is_profiler_frame(frame: &Frame) -> bool {
    const NAMES: &[&str] = &[
        "memprof::alloc::",
        "<memprof::alloc::",
        "memprof::stack::",
        "memprof::sample::",
        "backtrace::",
        "<backtrace::",
        "_Unwind_",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rg_alloc",
        "__rg_realloc",
        "__rg_alloc_zeroed",
        "__rdl_alloc",
        "__rdl_realloc",
        "__rdl_alloc_zeroed",
    ];
    if NAMES.iter().any(|p| frame.function.starts_with(p)) {
        return true;
    }
    let Some(file) = frame.file.as_deref() else {
        return false;
    };
    let file = file.replace('\\', "/");
    let in_memprof = ["/memprof/src/", "/memprof-"]
        .iter()
        .any(|d| file.contains(d))
        && ["/src/alloc/", "/src/stack/", "/src/sample/"]
            .iter()
            .any(|d| file.contains(d));
    in_memprof || file.contains("/backtrace-0.") || file.contains("/backtrace/src/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_named_function() -> usize {
        let mut buf = [0usize; 64];
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
    fn resolved_addresses_remember_which_frames_are_the_profilers() {
        let frames: Arc<[Arc<Frame>]> = [
            frame("__rust_alloc", None),
            frame("grow", Some("/rustc/abc/library/alloc/src/raw_vec.rs")),
            frame("record", Some("/x/memprof/src/alloc/record.rs")),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let resolved = Resolved::new(frames);
        let flags: Vec<bool> = (0..4).map(|i| resolved.is_profiler(i)).collect();
        assert_eq!(flags, [true, false, true, false]);
        assert!(!resolved.is_profiler(64) && !resolved.is_profiler(usize::MAX));

        // A cached address answers from the cache, frames shared.
        let addr = a_named_function();
        let mut symbolizer = Symbolizer::lock();
        let first = symbolizer.resolve(addr);
        let again = symbolizer.resolve(addr);
        assert!(Arc::ptr_eq(&first.frames, &again.frames));
        assert_eq!(first.profiler, again.profiler);
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
    fn resolves_names_and_recognises_profiler_frames() {
        let addr = a_named_function();
        assert_ne!(addr, 0);
        let frames = resolve(addr);
        assert!(!frames.is_empty());
        assert!(cache_bytes() > 0);
        assert!(is_profiler_frame(&frame(
            "memprof::alloc::record::sampled_alloc",
            None
        )));
        assert!(is_profiler_frame(&frame("__rust_alloc", None)));
        assert!(is_profiler_frame(&frame(
            "record",
            Some("/x/memprof/src/alloc/record.rs")
        )));
        assert!(is_profiler_frame(&frame(
            "trace",
            Some("/r/registry/src/backtrace-0.3.77/src/backtrace/mod.rs")
        )));
        assert!(!is_profiler_frame(&frame(
            "alloc",
            Some("/rustc/abc/library/alloc/src/alloc.rs")
        )));
        assert!(!is_profiler_frame(&frame(
            "memprof::scope::scope",
            Some("/x/memprof/src/scope.rs")
        )));
        assert!(!is_profiler_frame(&frame(
            "alloc::raw_vec::RawVec<T>::grow",
            None
        )));
    }
}
