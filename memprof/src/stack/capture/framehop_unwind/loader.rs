//! The dynamic loader's list of objects, read with the loader's lock held.
//!
//! `dl_iterate_phdr` runs its callback with the loader's list lock taken
//! (glibc's `dl_load_write_lock`, a recursive mutex), and `dlclose` takes
//! that lock to unmap an object and drop it from the list. So while a
//! callback runs, every object the loader lists stays mapped, and the
//! `dlpi_adds`/`dlpi_subs` counters it reports (objects ever loaded, ever
//! unloaded) describe exactly that list. [`locked`] runs a closure there:
//! the module list is checked against the counters and its unwind tables
//! are read only inside it, which is what keeps them from outliving their
//! object (see `modules`).
//!
//! # Fork
//!
//! glibc does not reset this lock in a forked child (it resets
//! `dl_load_lock`, not `dl_load_write_lock`), so a child forked while
//! another thread held it (inside `dlopen`, `dlclose` or any
//! `dl_iterate_phdr`) blocks in its first `dl_iterate_phdr`. Which thread
//! held it cannot be known, so in a forked child [`locked`] never runs:
//! walks there use the rules learned before the fork, and a frame without
//! one sends the walk to another walker. (Such a child could not load or
//! unload objects either.)

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

/// The loader's counters of objects ever loaded and ever unloaded; they
/// name one state of the list of loaded objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Counters {
    pub(super) adds: u64,
    pub(super) subs: u64,
}

/// Set in a forked child, where the lock may be held by a thread that does
/// not exist there.
static IN_FORKED_CHILD: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while this thread is inside [`locked`].
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the loader's lock held, given the counters that name the
/// current list of objects. `None` (and `f` not run) in a forked child (see
/// the module docs), when nested on this thread, or when the loader reports
/// no objects or no counters.
pub(super) fn locked<R>(f: impl FnOnce(Counters) -> R) -> Option<R> {
    // The handler that marks a forked child is registered before the
    // loader's lock is first taken (a no-op once registered, as it is on
    // the sampling path).
    crate::fork::register();
    if IN_FORKED_CHILD.load(Ordering::Relaxed) {
        return None;
    }
    if INSIDE.try_with(|inside| inside.replace(true)) != Ok(false) {
        return None;
    }
    let out = first_object(f);
    let _ = INSIDE.try_with(|inside| inside.set(false));
    out
}

/// Calls `f` once, from `dl_iterate_phdr`'s callback for the first object.
fn first_object<F: FnOnce(Counters) -> R, R>(f: F) -> Option<R> {
    struct Call<F, R> {
        f: Option<F>,
        out: Option<R>,
    }
    unsafe extern "C" fn first<F: FnOnce(Counters) -> R, R>(
        info: *mut libc::dl_phdr_info,
        size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // A loader too old to report the counters (glibc before 2.4).
        if size < core::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8 {
            return 1;
        }
        // SAFETY: the loader passes a valid `info` of at least `size` bytes
        // (checked to hold the counters) for the duration of the call;
        // `data` is the `Call` below, alive and not otherwise borrowed.
        unsafe {
            let call = &mut *(data as *mut Call<F, R>);
            let counters = Counters {
                adds: (*info).dlpi_adds,
                subs: (*info).dlpi_subs,
            };
            if let Some(f) = call.f.take() {
                call.out = Some(f(counters));
            }
        }
        1
    }
    let mut call: Call<F, R> = Call {
        f: Some(f),
        out: None,
    };
    // SAFETY: `first::<F, R>` matches the callback signature and only
    // touches `data` as the `Call<F, R>` it points to, alive for the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first::<F, R>),
            &mut call as *mut Call<F, R> as *mut libc::c_void,
        );
    }
    call.out
}

/// Calls `each` with the base address and program headers of every loaded
/// object. Only from inside [`locked`]'s closure (the lock is recursive, so
/// this takes it again on the same thread), so the list is the one the
/// counters given there name.
pub(super) fn for_each_object(each: &mut dyn FnMut(u64, &[libc::Elf64_Phdr])) {
    unsafe extern "C" fn one(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` points
        // to `dlpi_phnum` program headers, all valid during the call; `data`
        // is the `&mut dyn FnMut` below.
        unsafe {
            let each = &mut *(data as *mut &mut dyn FnMut(u64, &[libc::Elf64_Phdr]));
            let info = &*info;
            let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
                &[]
            } else {
                core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize)
            };
            each(info.dlpi_addr, headers);
        }
        0
    }
    let mut each = each;
    // SAFETY: `one` matches the callback signature and only touches `data`
    // as the closure reference it points to, alive for the whole call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(one),
            &mut each as *mut &mut dyn FnMut(u64, &[libc::Elf64_Phdr]) as *mut libc::c_void,
        );
    }
}

/// Marks this process as a forked child, where [`locked`] never runs. Called
/// by memprof's child handler (see `crate::fork`).
pub(crate) fn after_fork_in_child() {
    IN_FORKED_CHILD.store(true, Ordering::Relaxed);
}
