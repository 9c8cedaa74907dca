//! The loaded objects and their unwind tables, as an immutable list
//! published through an atomic pointer.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use framehop::x86_64::UnwinderX86_64;
use framehop::{MustNotAllocateDuringUnwind, Unwinder as _};

/// The framehop unwinder over loaded memory.
pub(super) type NativeUnwinder = UnwinderX86_64<&'static [u8], MustNotAllocateDuringUnwind>;

/// At most this many module lists are ever built; replaced lists are never
/// freed, so this bounds what they can leak. Later changes go unseen
/// (addresses in new objects unwind by frame pointer, or stop).
pub(super) const MAX_MODULE_LISTS: u32 = 64;

/// Minimum time between re-scans prompted by an unknown return address.
const RESCAN_INTERVAL_NANOS: u64 = 100_000_000;

/// One published snapshot of the loaded objects.
pub(super) struct Modules {
    pub(super) unwinder: NativeUnwinder,
    /// Executable ranges, sorted by start.
    code: Vec<Range<u64>>,
    /// The loader's load and unload counters when this list was built.
    adds: u64,
    subs: u64,
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
/// A non-null value points to a `Modules` leaked from a `Box` that is never
/// freed, so `&'static` references to it stay valid.
static CURRENT: AtomicPtr<Modules> = AtomicPtr::new(core::ptr::null_mut());
/// Held while one thread scans; others do not wait for it.
static SCANNING: AtomicBool = AtomicBool::new(false);
static LISTS_BUILT: AtomicU32 = AtomicU32::new(0);
static LAST_SCAN_NANOS: AtomicU64 = AtomicU64::new(0);

/// Lists built so far.
pub(super) fn lists_built() -> u32 {
    LISTS_BUILT.load(Ordering::Relaxed)
}

/// The current list, scanning the loaded objects first if there is none.
/// `None` while another thread does the first scan, or if it failed.
pub(super) fn current() -> Option<&'static Modules> {
    let ptr = CURRENT.load(Ordering::Acquire);
    if !ptr.is_null() {
        // SAFETY: see `CURRENT`: non-null pointers are leaked boxes, never
        // freed; the Acquire load pairs with the Release store in `publish`,
        // so the list's contents are visible.
        return Some(unsafe { &*ptr });
    }
    rescan();
    let ptr = CURRENT.load(Ordering::Acquire);
    // SAFETY: as above.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Re-scans if the loader's counters moved since `seen` was built. With
/// `unknown_address`, only if the last scan is older than
/// [`RESCAN_INTERVAL_NANOS`] (an address in no object at all, such as JIT
/// code, would otherwise prompt a scan per stack).
pub(super) fn refresh(seen: &Modules, unknown_address: bool) {
    if unknown_address {
        let now = crate::os::monotonic_nanos();
        let last = LAST_SCAN_NANOS.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RESCAN_INTERVAL_NANOS {
            return;
        }
        LAST_SCAN_NANOS.store(now, Ordering::Relaxed);
    }
    if loader_counters() != Some((seen.adds, seen.subs)) {
        rescan();
    }
}

/// Builds and publishes a new list if there is none or the loader's
/// counters moved since the current one, unless another thread is already
/// at it or the budget of lists is spent.
#[cold]
fn rescan() {
    if SCANNING.swap(true, Ordering::Acquire) {
        return;
    }
    let old = CURRENT.load(Ordering::Acquire);
    // SAFETY: see `CURRENT`: non-null pointers are leaked boxes, never freed.
    let stale = match unsafe { old.as_ref() } {
        None => true,
        Some(old) => loader_counters() != Some((old.adds, old.subs)),
    };
    if stale && LISTS_BUILT.load(Ordering::Relaxed) < MAX_MODULE_LISTS {
        if let Some(modules) = scan() {
            LISTS_BUILT.fetch_add(1, Ordering::Relaxed);
            let ptr = Box::into_raw(Box::new(modules));
            // Release: readers that Acquire-load the pointer see the list.
            // The old list is deliberately leaked (see `CURRENT`).
            CURRENT.store(ptr, Ordering::Release);
        }
    }
    SCANNING.store(false, Ordering::Release);
}

/// The loader's (adds, subs) counters, read from the first object it lists.
fn loader_counters() -> Option<(u64, u64)> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` for the duration of the
        // call; `data` is the `&mut Option<(u64, u64)>` given below.
        unsafe {
            let out = &mut *(data as *mut Option<(u64, u64)>);
            *out = Some(((*info).dlpi_adds, (*info).dlpi_subs));
        }
        1
    }
    let mut out: Option<(u64, u64)> = None;
    // SAFETY: `first` matches the callback signature and only writes through
    // `data`, which points to `out`, alive for the whole call.
    unsafe {
        libc::dl_iterate_phdr(Some(first), &mut out as *mut _ as *mut libc::c_void);
    }
    out
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
fn scan() -> Option<Modules> {
    struct Scan {
        found: Vec<Found>,
        counters: Option<(u64, u64)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` points
        // to `dlpi_phnum` program headers, all valid during the call; `data`
        // is the `&mut Scan` given below.
        unsafe {
            let scan = &mut *(data as *mut Scan);
            let info = &*info;
            if scan.counters.is_none() {
                scan.counters = Some((info.dlpi_adds, info.dlpi_subs));
            }
            let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
                &[]
            } else {
                core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize)
            };
            if let Some(found) = found_object(info.dlpi_addr, headers) {
                scan.found.push(found);
            }
        }
        0
    }
    let mut scan = Scan {
        found: Vec::with_capacity(32),
        counters: None,
    };
    // SAFETY: `each` matches the callback signature and only touches `data`,
    // which points to `scan`, alive for the whole call.
    unsafe {
        libc::dl_iterate_phdr(Some(each), &mut scan as *mut Scan as *mut libc::c_void);
    }
    let (adds, subs) = scan.counters?;
    let mut unwinder = NativeUnwinder::new();
    let mut code = Vec::with_capacity(scan.found.len());
    for found in scan.found {
        code.push(found.code.clone());
        unwinder.add_module(framehop::Module::new(
            String::new(),
            found.code,
            found.base,
            SectionInfo(found.tables),
        ));
    }
    code.sort_by_key(|r| r.start);
    Some(Modules {
        unwinder,
        code,
        adds,
        subs,
    })
}

/// Reads one object's program headers: its code range and unwind tables.
///
/// # Safety
///
/// `headers` are the object's program headers as loaded at `base`, so
/// every `PT_LOAD` segment is mapped at `base + p_vaddr` for `p_memsz` bytes
/// and stays mapped while the object is loaded.
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
