//! x86_64 Linux: per-thread caches and the unwind loop.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder as _};

use super::modules::{self, Modules};
use super::FramehopCounters;
use crate::stack::MAX_FRAMES;

/// framehop caches per thread: the associativity of the combined cache.
const WAYS: usize = 4;
/// Slots in one framehop rule cache (`CACHE_ENTRY_COUNT` in framehop 0.16's
/// `rule_cache.rs`), which maps an address to slot `address % SETS`. If a
/// framehop release changes it, the mirror below steers less well; results
/// stay correct.
const SETS: usize = 509;
/// At most this many per-thread states exist at once (each about 60 KiB);
/// a thread that finds none beyond that uses `backtrace`.
const MAX_STATES: u32 = 1024;
/// Every this many stacks, a thread checks whether objects were loaded or
/// unloaded since its module list was built.
const RECHECK_EVERY: u32 = 4096;

type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// Which address each framehop cache slot holds (0: none), set by set so
/// one probe reads one cache line, and each set's next victim.
struct Mirror {
    tags: [[u64; WAYS]; SETS],
    victims: [u8; SETS],
}

impl Mirror {
    /// The way for `lookup` in `set`, and whether it is (probably) cached.
    #[inline(always)]
    fn way(&mut self, set: usize, lookup: u64) -> (usize, bool) {
        let tags = &mut self.tags[set];
        for (w, tag) in tags.iter().enumerate() {
            if *tag == lookup {
                return (w, true);
            }
        }
        let w = self.victims[set] as usize % WAYS;
        self.victims[set] = ((w + 1) % WAYS) as u8;
        tags[w] = lookup;
        (w, false)
    }
}

/// One thread's unwinding state.
struct ThreadState {
    caches: [Cache; WAYS],
    mirror: Box<Mirror>,
    /// The module list `mirror` describes.
    modules: *const Modules,
    /// Stacks since the last check for loaded or unloaded objects.
    stacks: u32,
    /// Link in the free list.
    next_free: *mut ThreadState,
}

/// `STATE` while an unwind on this thread is using the state.
const IN_USE: *mut ThreadState = core::ptr::dangling_mut();

thread_local! {
    /// This thread's state: null until its first stack, `IN_USE` during one.
    static STATE: Cell<*mut ThreadState> = const { Cell::new(core::ptr::null_mut()) };
    /// Returns `STATE` to the free list when the thread exits.
    static RELEASE: Release = const { Release };
}

/// Free states, linked through `next_free`; guarded by `FREE_LOCK`.
static FREE: AtomicPtr<ThreadState> = AtomicPtr::new(core::ptr::null_mut());
/// Only ever try-locked or spun on a bounded number of times, so a lock
/// inherited locked across `fork` cannot hang anyone.
static FREE_LOCK: AtomicBool = AtomicBool::new(false);
static STATES: AtomicU32 = AtomicU32::new(0);
static STATES_LEAKED: AtomicU32 = AtomicU32::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let Ok(state) = STATE.try_with(|s| s.replace(core::ptr::null_mut())) else {
            return;
        };
        if state.is_null() || state == IN_USE {
            return;
        }
        for _ in 0..1000 {
            if !FREE_LOCK.swap(true, Ordering::Acquire) {
                // SAFETY: `state` came from `Box::into_raw` in `state()` and
                // this thread owned it; no other thread can see it until the
                // push below publishes it, under the lock.
                unsafe { (*state).next_free = FREE.load(Ordering::Relaxed) };
                FREE.store(state, Ordering::Relaxed);
                // Release: the next thread to take the lock sees the state.
                FREE_LOCK.store(false, Ordering::Release);
                return;
            }
            core::hint::spin_loop();
        }
        STATES_LEAKED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A free state from the list, if the lock is free and the list is not.
fn pop_free() -> *mut ThreadState {
    if FREE_LOCK.swap(true, Ordering::Acquire) {
        return core::ptr::null_mut();
    }
    let state = FREE.load(Ordering::Relaxed);
    if !state.is_null() {
        // SAFETY: states on the list are live leaked boxes that no thread
        // uses; we hold the lock, so nobody else pops this one.
        FREE.store(unsafe { (*state).next_free }, Ordering::Relaxed);
    }
    FREE_LOCK.store(false, Ordering::Release);
    state
}

/// Takes this thread's state, creating it on its first stack. Returns null
/// if there is none to be had (TLS being torn down, a nested call, the cap).
fn take_state() -> *mut ThreadState {
    let Ok(state) = STATE.try_with(|s| s.replace(IN_USE)) else {
        return core::ptr::null_mut();
    };
    if state == IN_USE {
        return core::ptr::null_mut();
    }
    if !state.is_null() {
        return state;
    }
    let state = new_state();
    if state.is_null() {
        let _ = STATE.try_with(|s| s.set(core::ptr::null_mut()));
    }
    state
}

#[cold]
fn new_state() -> *mut ThreadState {
    // Registers the thread-exit hook; fails once the thread's TLS is being
    // destroyed, when a new state could not be returned.
    if RELEASE.try_with(|_| ()).is_err() {
        return core::ptr::null_mut();
    }
    let reused = pop_free();
    if !reused.is_null() {
        return reused;
    }
    if STATES.fetch_add(1, Ordering::Relaxed) >= MAX_STATES {
        STATES.fetch_sub(1, Ordering::Relaxed);
        return core::ptr::null_mut();
    }
    let Some(mirror) = zeroed_mirror() else {
        STATES.fetch_sub(1, Ordering::Relaxed);
        return core::ptr::null_mut();
    };
    Box::into_raw(Box::new(ThreadState {
        caches: core::array::from_fn(|_| Cache::new_in()),
        mirror,
        modules: core::ptr::null(),
        stacks: 0,
        next_free: core::ptr::null_mut(),
    }))
}

/// A zeroed `Mirror` straight on the heap (no 16 KiB stack temporary).
fn zeroed_mirror() -> Option<Box<Mirror>> {
    let layout = std::alloc::Layout::new::<Mirror>();
    // SAFETY: `Mirror` has a non-zero size, as `alloc_zeroed` requires.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut Mirror;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` is a fresh, zeroed block of `Mirror`'s layout from the
    // global allocator, which is what `Box` frees it with; all-zero bytes
    // are a valid `Mirror` (integers only).
    Some(unsafe { Box::from_raw(ptr) })
}

/// Whether this platform has the framehop unwinder: yes.
pub(crate) fn supported() -> bool {
    true
}

/// The bookkeeping counters.
pub(crate) fn counters() -> FramehopCounters {
    FramehopCounters {
        module_lists: modules::lists_built(),
        states: STATES.load(Ordering::Relaxed),
        states_leaked: STATES_LEAKED.load(Ordering::Relaxed),
        cache_misses: MISSES.load(Ordering::Relaxed),
    }
}

#[inline(always)]
fn registers() -> (u64, u64, u64) {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads rip (by address computation), rsp and rbp into
    // registers; touches no memory, the stack or flags.
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    (ip, sp, bp)
}

/// Fills `buf` with return addresses, leaf first (the first is in the
/// caller of this function); returns how many, or `None` if this thread
/// cannot use framehop now (then the caller uses another unwinder).
///
/// `[lo, hi)` are the bounds of this thread's stack; only memory between the
/// current stack pointer and `hi` is read.
#[inline(never)]
pub(crate) fn unwind(buf: &mut [usize; MAX_FRAMES], lo: usize, hi: usize) -> Option<usize> {
    let (ip, sp, bp) = registers();
    let (lo, hi) = (lo as u64, hi as u64);
    if sp < lo || sp >= hi || hi < 8 {
        return None;
    }
    let modules = modules::current()?;
    let state = take_state();
    if state.is_null() {
        return None;
    }
    // SAFETY: `take_state` handed us exclusive use of the live state (STATE
    // reads `IN_USE` until we put it back below, so no nested call on this
    // thread touches it, and no other thread knows it).
    let n = unwind_with(unsafe { &mut *state }, modules, buf, ip, sp, bp, hi);
    let _ = STATE.try_with(|s| s.set(state));
    Some(n)
}

#[inline(always)]
fn unwind_with(
    state: &mut ThreadState,
    modules: &'static Modules,
    buf: &mut [usize; MAX_FRAMES],
    ip: u64,
    sp: u64,
    bp: u64,
    hi: u64,
) -> usize {
    if !core::ptr::eq(state.modules, modules) {
        state.modules = modules;
        for tags in &mut state.mirror.tags {
            tags.fill(0);
        }
    }
    let last_word = hi - 8;
    let mut read_stack = |addr: u64| {
        if addr >= sp && addr <= last_word && addr.is_multiple_of(8) {
            // SAFETY: `[sp, hi)` is the live part of this thread's own stack,
            // mapped and readable; `addr` is aligned and its 8 bytes lie in
            // it. Volatile: the words may be padding the compiler never wrote.
            Ok(unsafe { core::ptr::read_volatile(addr as *const u64) })
        } else {
            Err(())
        }
    };
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let mut address = FrameAddress::from_instruction_pointer(ip);
    let mut n = 0;
    let mut misses = 0u64;
    let mut unknown = false;
    while n < MAX_FRAMES {
        let lookup = address.address_for_lookup();
        let (way, hit) = state.mirror.way((lookup % SETS as u64) as usize, lookup);
        if !hit {
            misses += 1;
            unknown |= !modules.contains(lookup);
        }
        let Some(cache) = state.caches.get_mut(way) else {
            break;
        };
        match modules
            .unwinder
            .unwind_frame(address, &mut regs, cache, &mut read_stack)
        {
            Ok(Some(ret)) => {
                let Some(next) = FrameAddress::from_return_address(ret) else {
                    break;
                };
                buf[n] = ret as usize;
                n += 1;
                address = next;
            }
            // The end of the stack, or an error: stop here either way.
            Ok(None) | Err(_) => break,
        }
    }
    if misses != 0 {
        MISSES.fetch_add(misses, Ordering::Relaxed);
    }
    state.stacks = state.stacks.wrapping_add(1);
    if unknown || state.stacks.is_multiple_of(RECHECK_EVERY) {
        modules::refresh(modules, unknown);
    }
    n
}
