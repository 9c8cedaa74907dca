//! Turning return addresses into function names, files and lines.
//!
//! Symbolization is slow (it parses DWARF) and allocates freely, so it never
//! runs on the allocation path: snapshots call it, on the thread that asked.
//! Results are cached per address; the cache holds at most
//! [`MAX_CACHED_ADDRESSES`] addresses and is emptied when full, so its memory
//! stays bounded. Its size is reported in the profiler's own memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// The most addresses kept in the cache before it is emptied.
pub const MAX_CACHED_ADDRESSES: usize = 1 << 17;

struct Cache {
    frames: HashMap<usize, Arc<[Arc<Frame>]>>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Bytes held by the symbol cache (an estimate: strings plus entry overhead).
pub fn cache_bytes() -> usize {
    CACHE
        .lock()
        .map(|c| c.as_ref().map_or(0, |c| c.bytes))
        .unwrap_or(0)
}

/// Symbolizes one return address (innermost frame first).
pub fn resolve(address: usize) -> Arc<[Arc<Frame>]> {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(|| Cache {
        frames: HashMap::new(),
        bytes: 0,
    });
    if let Some(frames) = cache.frames.get(&address) {
        return Arc::clone(frames);
    }
    if cache.frames.len() >= MAX_CACHED_ADDRESSES {
        cache.frames.clear();
        cache.bytes = 0;
    }
    let frames = resolve_uncached(address);
    cache.bytes += 64
        + frames
            .iter()
            .map(|f| 64 + f.function.len() + f.file.as_ref().map_or(0, String::len))
            .sum::<usize>();
    cache.frames.insert(address, Arc::clone(&frames));
    frames
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
        frames.push(Arc::new(Frame {
            function: format!("{address:#x}"),
            file: None,
            line: None,
            address: address as u64,
        }));
    }
    frames.into()
}

/// Whether a frame belongs to the allocation machinery rather than to the
/// code that asked for memory: memprof itself, the unwinder, and the global
/// allocator shims. Such frames are trimmed from the leaf end of stacks.
pub fn is_allocator_frame(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "memprof::",
        "<memprof::",
        "backtrace::",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rg_alloc",
        "__rg_realloc",
        "__rg_alloc_zeroed",
        "__rdl_alloc",
        "__rdl_realloc",
        "_Unwind_Backtrace",
        "_Unwind_",
        "__libc_malloc",
        "<tikv_jemallocator::Jemalloc",
        "tikv_jemallocator::",
    ];
    PREFIXES.iter().any(|p| function.starts_with(p))
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

    #[test]
    fn resolves_names_and_trims_allocator_frames() {
        let addr = a_named_function();
        assert_ne!(addr, 0);
        let frames = resolve(addr);
        assert!(!frames.is_empty());
        assert!(is_allocator_frame("memprof::alloc::record::sampled_alloc"));
        assert!(is_allocator_frame("__rust_alloc"));
        assert!(!is_allocator_frame("alloc::raw_vec::RawVec<T>::grow"));
        assert!(cache_bytes() > 0);
    }
}
