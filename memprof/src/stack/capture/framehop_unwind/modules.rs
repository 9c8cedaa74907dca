//! The loaded objects and their unwind tables.
//!
//! Each object becomes a framehop `Module` that reads its `.eh_frame_hdr`
//! and `.eh_frame` in place, in the object's loaded memory, which `dlclose`
//! unmaps. So a list is only ever used inside [`loader::locked`], with the
//! loader's lock held (no object can be unloaded meanwhile), and only after
//! its counters were found equal to the loader's (every object it lists is
//! loaded, where it lists it). When they differ, the list is rebuilt, and
//! the old one freed, under that same lock hold, before anything reads a
//! table. So:
//!
//! * no table is read after its object is unloaded, on any thread, whatever
//!   other threads load or unload meanwhile (`dlclose` waits for the lock);
//! * a list is rebuilt whenever objects were loaded or unloaded, as often
//!   as that happens, and at most one exists (plus the one being built);
//! * the process-wide rule table (`rules`), learned from the tables, is
//!   emptied with each rebuild, and rules are learned and inserted only
//!   under the lock, so no rule learned from a replaced list survives it.
//!
//! The walk's hot loop reads only the rule table and the stack, outside the
//! lock (see `imp`): it takes the lock when a frame needs framehop, and now
//! and then at its start to bring the list and rules up to date.

use core::ops::Range;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use framehop::x86_64::UnwinderX86_64;
use framehop::{MustNotAllocateDuringUnwind, Unwinder as _};

use super::loader::{self, Counters};
use super::rules::RULES;

/// The framehop unwinder over loaded memory. The `'static` slices are
/// valid only while their list is current and the loader's lock is held:
/// see the module docs; nothing hands out a list beyond [`with_current`].
pub(super) type NativeUnwinder = UnwinderX86_64<&'static [u8], MustNotAllocateDuringUnwind>;

/// One list of the loaded objects.
pub(super) struct Modules {
    pub(super) unwinder: NativeUnwinder,
    /// Executable ranges, sorted by start.
    code: Vec<Range<u64>>,
    /// The loader's counters when this list was built.
    counters: Counters,
    /// Which list this is (how many were built before it, plus one), so
    /// that caches filled from another list can tell.
    pub(super) generation: u32,
}

impl Modules {
    /// Whether `address` lies in a known object's code.
    pub(super) fn contains(&self, address: u64) -> bool {
        let i = self.code.partition_point(|r| r.start <= address);
        i > 0 && self.code[i - 1].end > address
    }
}

/// The current list; null until the first scan.
///
/// # Safety invariant
///
/// A non-null value points to a `Modules` from `Box::into_raw`. It is read,
/// replaced and freed only with the loader's lock held (inside
/// [`loader::locked`], by [`current_for`]), and references to it never
/// leave that lock hold, so no thread can be using a list that another
/// frees.
static CURRENT: AtomicPtr<Modules> = AtomicPtr::new(core::ptr::null_mut());
static LISTS_BUILT: AtomicU32 = AtomicU32::new(0);

/// Lists built so far.
pub(super) fn lists_built() -> u32 {
    LISTS_BUILT.load(Ordering::Relaxed)
}

/// Runs `f` with the list of the objects loaded now, rebuilding it first if
/// objects were loaded or unloaded since it was built, with the loader's
/// lock held throughout (so the list stays right while `f` runs). `None`
/// where [`loader::locked`] does not run, or no list could be built.
pub(super) fn with_current<R>(f: impl FnOnce(&Modules) -> R) -> Option<R> {
    loader::locked(|counters| {
        // SAFETY: we hold the loader's lock, and `f` cannot keep the
        // reference (it is borrowed for the call only).
        let modules = unsafe { current_for(counters) }?;
        Some(f(modules))
    })
    .flatten()
}

/// The current list, rebuilt first if its counters are not `counters`.
///
/// # Safety
///
/// Only with the loader's lock held, `counters` read under it; the
/// reference must not be used once the lock is released.
unsafe fn current_for<'a>(counters: Counters) -> Option<&'a Modules> {
    let old = CURRENT.load(Ordering::Acquire);
    // SAFETY: see `CURRENT`: we hold the lock, so nobody frees it meanwhile.
    if let Some(current) = unsafe { old.as_ref() } {
        if current.counters == counters {
            return Some(current);
        }
    }
    // Objects were loaded or unloaded: rules learned from the old tables
    // may describe code that is gone.
    RULES.forget_all();
    // SAFETY: passed on from our caller.
    let new = match unsafe { scan(counters) } {
        Some(modules) => Box::into_raw(Box::new(modules)),
        None => core::ptr::null_mut(),
    };
    CURRENT.store(new, Ordering::Release);
    if !old.is_null() {
        // SAFETY: see `CURRENT`: `old` came from `Box::into_raw`, is no
        // longer published, and no other thread can hold a reference to it
        // (references live only under the lock, which we hold); this
        // thread's only one was `current` above, no longer used.
        drop(unsafe { Box::from_raw(old) });
    }
    // SAFETY: as for `old`: published by us under the lock we hold.
    unsafe { new.as_ref() }
}

/// One loaded object, as found by `dl_iterate_phdr`.
struct Found {
    code: Range<u64>,
    base: u64,
    /// `.eh_frame_hdr` and `.eh_frame`, with their addresses relative to
    /// `base` (ELF "stated" addresses).
    tables: Option<EhTables>,
}

struct EhTables {
    hdr_svma: u64,
    hdr: &'static [u8],
    eh_frame_svma: u64,
    eh_frame: &'static [u8],
}

/// Lists the loaded objects; allocates (the thread is busy, so that goes to
/// the inner allocator).
///
/// # Safety
///
/// Only with the loader's lock held, `counters` read under it: the tables
/// found are read here, and stay valid only while the counters hold.
unsafe fn scan(counters: Counters) -> Option<Modules> {
    let mut found = Vec::with_capacity(32);
    loader::for_each_object(&mut |base, headers| {
        // SAFETY: `headers` are the object's program headers as loaded at
        // `base`, given by the loader under its lock (held by our caller).
        if let Some(object) = unsafe { found_object(base, headers) } {
            found.push(object);
        }
    });
    if found.is_empty() {
        return None;
    }
    let mut unwinder = NativeUnwinder::new();
    let mut code = Vec::with_capacity(found.len());
    for object in found {
        code.push(object.code.clone());
        unwinder.add_module(framehop::Module::new(
            String::new(),
            object.code,
            object.base,
            SectionInfo(object.tables),
        ));
    }
    code.sort_by_key(|r| r.start);
    let generation = LISTS_BUILT.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    Some(Modules {
        unwinder,
        code,
        counters,
        generation,
    })
}

/// Reads one object's program headers: its code range and unwind tables.
///
/// # Safety
///
/// `headers` are the object's program headers as loaded at `base`, so
/// every `PT_LOAD` segment is mapped at `base + p_vaddr` for `p_memsz` bytes
/// and stays mapped while the object is loaded; the caller holds the
/// loader's lock.
unsafe fn found_object(base: u64, headers: &[libc::Elf64_Phdr]) -> Option<Found> {
    let mut code: Option<Range<u64>> = None;
    let mut hdr: Option<(u64, u64)> = None;
    for h in headers {
        if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0 {
            let start = base.checked_add(h.p_vaddr)?;
            let end = start.checked_add(h.p_memsz)?;
            code = Some(match code {
                Some(r) => r.start.min(start)..r.end.max(end),
                None => start..end,
            });
        } else if h.p_type == libc::PT_GNU_EH_FRAME {
            hdr = Some((h.p_vaddr, h.p_memsz));
        }
    }
    let code = code?;
    // SAFETY: passed on from the caller.
    let tables = hdr.and_then(|(vaddr, len)| unsafe { eh_tables(base, headers, vaddr, len) });
    Some(Found { code, base, tables })
}

/// Finds `.eh_frame` from `.eh_frame_hdr`. Its length is not recorded
/// anywhere loaded, so the slice runs to the end of its segment; framehop
/// reads it only at offsets from the header's search table.
///
/// # Safety
///
/// As for [`found_object`].
unsafe fn eh_tables(
    base: u64,
    headers: &[libc::Elf64_Phdr],
    hdr_vaddr: u64,
    hdr_len: u64,
) -> Option<EhTables> {
    // The readable segment that holds `vaddr`: how many bytes it has from there.
    let readable_to_end = |vaddr: u64| {
        headers.iter().find_map(|h| {
            let end = h.p_vaddr.checked_add(h.p_memsz)?;
            (h.p_type == libc::PT_LOAD
                && h.p_flags & libc::PF_R != 0
                && h.p_vaddr <= vaddr
                && vaddr < end)
                .then(|| end - vaddr)
        })
    };
    if hdr_len < 8 || readable_to_end(hdr_vaddr)? < hdr_len {
        return None;
    }
    let hdr_addr = base.checked_add(hdr_vaddr)?;
    // SAFETY: `hdr_len` bytes at `hdr_addr` lie in a mapped, readable
    // segment (checked above) that stays mapped while the object is loaded.
    let hdr: &'static [u8] =
        unsafe { core::slice::from_raw_parts(hdr_addr as *const u8, hdr_len as usize) };
    // version 1, then the encoding of `eh_frame_ptr`, which starts at byte 4.
    if hdr[0] != 1 {
        return None;
    }
    let field = hdr_addr + 4;
    let eh_frame_addr = match hdr[1] {
        // DW_EH_PE_pcrel | DW_EH_PE_sdata4: what linkers write.
        0x1b => {
            let v = i32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            field.checked_add_signed(i64::from(v))?
        }
        // DW_EH_PE_udata4, DW_EH_PE_sdata4: absolute stated addresses.
        0x03 => base.checked_add(u64::from(u32::from_le_bytes([
            hdr[4], hdr[5], hdr[6], hdr[7],
        ])))?,
        _ => return None,
    };
    let eh_frame_vaddr = eh_frame_addr.checked_sub(base)?;
    let len = readable_to_end(eh_frame_vaddr)?;
    // SAFETY: `len` bytes from `eh_frame_addr` are the rest of a mapped,
    // readable segment that stays mapped while the object is loaded.
    let eh_frame: &'static [u8] =
        unsafe { core::slice::from_raw_parts(eh_frame_addr as *const u8, len as usize) };
    Some(EhTables {
        hdr_svma: hdr_vaddr,
        hdr,
        eh_frame_svma: eh_frame_vaddr,
        eh_frame,
    })
}

/// Hands framehop the two sections of one object (ELF: stated base 0).
struct SectionInfo(Option<EhTables>);

impl framehop::ModuleSectionInfo<&'static [u8]> for SectionInfo {
    fn base_svma(&self) -> u64 {
        0
    }

    fn section_svma_range(&mut self, name: &[u8]) -> Option<Range<u64>> {
        let t = self.0.as_ref()?;
        match name {
            b".eh_frame_hdr" => Some(t.hdr_svma..t.hdr_svma + t.hdr.len() as u64),
            b".eh_frame" => Some(t.eh_frame_svma..t.eh_frame_svma + t.eh_frame.len() as u64),
            _ => None,
        }
    }

    fn section_data(&mut self, name: &[u8]) -> Option<&'static [u8]> {
        let t = self.0.as_ref()?;
        match name {
            b".eh_frame_hdr" => Some(t.hdr),
            b".eh_frame" => Some(t.eh_frame),
            _ => None,
        }
    }
}
