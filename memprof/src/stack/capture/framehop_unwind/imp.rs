//! x86_64 Linux: per-thread caches and the unwind loop.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder as _};

use super::modules::{self, Modules};
use super::rules::{Cache, Caller, Rule, Stack, RULES};
use super::FramehopCounters;
use crate::stack::capture::Frames;

/// At most this many per-thread states exist at once (each about 11 KiB);
/// a thread that finds none beyond that uses `backtrace`.
const MAX_STATES: u32 = 1024;
/// Every this many stacks, a thread brings the module list and the rule
/// table up to date even if no frame needed framehop (see [`unwind`]).
const RECHECK_EVERY: u32 = 64;

/// One thread's unwinding state.
struct ThreadState {
    /// framehop's cache, for frames the rule table cannot unwind.
    cache: Cache,
    /// The generation of the module list `cache` was filled with (0: none).
    generation: u32,
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
    /// Stacks this thread walked, for the recheck every `RECHECK_EVERY`.
    static WALKS: Cell<u32> = const { Cell::new(0) };
}

/// Free states, linked through `next_free`; guarded by `FREE_LOCK`.
static FREE: AtomicPtr<ThreadState> = AtomicPtr::new(core::ptr::null_mut());
/// Only ever try-locked or spun on a bounded number of times, so a lock
/// inherited locked across `fork` cannot hang anyone.
static FREE_LOCK: AtomicBool = AtomicBool::new(false);
static STATES: AtomicU32 = AtomicU32::new(0);
static STATES_LEAKED: AtomicU32 = AtomicU32::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static NOT_COMPACT: AtomicU64 = AtomicU64::new(0);

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
    Box::into_raw(Box::new(ThreadState {
        cache: Cache::new_in(),
        generation: 0,
        next_free: core::ptr::null_mut(),
    }))
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
        rules_not_compact: NOT_COMPACT.load(Ordering::Relaxed),
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
/// current stack pointer and `hi` is read, and the loaded objects' unwind
/// tables only with the loader's lock held (see `modules`).
#[inline(never)]
pub(crate) fn unwind(buf: &mut Frames, lo: usize, hi: usize) -> Option<usize> {
    let (ip, sp, bp) = registers();
    let (lo, hi) = (lo as u64, hi as u64);
    if sp < lo || sp >= hi {
        return None;
    }
    // The hot loop below reads no table, only rules and the stack, so it
    // needs no lock. A rule outlives its code only if an object was
    // unloaded and another loaded at the same addresses, and until some
    // walk meets a frame without a rule (which takes the lock below, and
    // finds the list stale): then it steps a frame wrongly (reading only
    // the stack). The recheck every `RECHECK_EVERY` walks bounds even that,
    // at a small share of a lock round trip's cost (about 500 instructions).
    let walks = WALKS.try_with(|w| {
        let walks = w.get().wrapping_add(1);
        w.set(walks);
        walks
    });
    if walks.is_ok_and(|w| w.is_multiple_of(RECHECK_EVERY)) {
        modules::with_current(|_| ())?;
    }
    let stack = Stack::new(sp, hi);
    // This function's own frame is walked like the others, with a rule from
    // the table. `ip + 1` stands in for a return address: the walk looks up
    // the CFI of the byte before a return address, here `ip`, whose row
    // holds where the registers were read; and as `ip + 1` lies inside an
    // instruction, no real return address shares its table entry.
    let mut walk = Walk {
        frame: Caller {
            return_address: ip + 1,
            sp,
            bp,
        },
        n: 0,
    };
    let rule = match walk.by_rules(buf, &stack) {
        Some(rule) if rule != Rule::END_OF_STACK => rule,
        _ => return Some(walk.n),
    };
    // A frame the rule table cannot step. framehop needs this thread's
    // state, taken before the loader's lock: its first use registers a
    // thread-exit hook, which takes the loader's other lock (`dl_load_lock`),
    // and `dlopen` takes the two the other way round (this deadlocked).
    // Nothing run with the lock held may take `dl_load_lock` (no first use
    // of a thread-local with a destructor, no `dlsym` or `dlopen`).
    let mut state = TakenState::take()?;
    // framehop reads the tables, so the rest of the walk runs with the
    // loader's lock held.
    modules::with_current(|modules| walk.by_framehop(modules, state.get(), rule, buf, &stack))
}

/// This thread's state, taken for one walk; given back when dropped.
struct TakenState(*mut ThreadState);

impl TakenState {
    fn take() -> Option<TakenState> {
        let state = take_state();
        (!state.is_null()).then_some(TakenState(state))
    }

    fn get(&mut self) -> &mut ThreadState {
        // SAFETY: `take_state` handed us exclusive use of the live state
        // (`STATE` reads `IN_USE` until `drop` puts it back, so no nested
        // call on this thread touches it, and no other thread knows it).
        unsafe { &mut *self.0 }
    }
}

impl Drop for TakenState {
    fn drop(&mut self) {
        let _ = STATE.try_with(|s| s.set(self.0));
    }
}

/// A walk in progress: the frame to step next and how many were written.
struct Walk {
    frame: Caller,
    n: usize,
}

impl Walk {
    /// The hot loop: steps frames with compact rules from the table, no
    /// calls and no table reads. Returns the first frame's rule that is not
    /// compact, or `None` once the walk is over.
    #[inline(always)]
    fn by_rules(&mut self, buf: &mut Frames, stack: &Stack) -> Option<Rule> {
        loop {
            if self.n == buf.len() {
                return None;
            }
            let rule = RULES.rule(self.frame.return_address);
            if !rule.is_compact() {
                return Some(rule);
            }
            let caller = rule.step(self.frame.sp, self.frame.bp, stack)?;
            buf[self.n].write(caller.return_address as usize);
            self.n += 1;
            self.frame = caller;
        }
    }

    /// The rest of the walk from a frame whose rule is `rule` (not
    /// compact): framehop for such frames, with this thread's `state`, and
    /// the rule table for the others. Returns how many frames were written.
    fn by_framehop(
        mut self,
        modules: &Modules,
        state: &mut ThreadState,
        mut rule: Rule,
        buf: &mut Frames,
        stack: &Stack,
    ) -> usize {
        if state.generation != modules.generation {
            // framehop keys its cache by a generation that a new unwinder may
            // repeat, so a cache filled with another module list is dropped.
            state.generation = modules.generation;
            state.cache = Cache::new_in();
        }
        let mut misses = 0u64;
        while rule != Rule::END_OF_STACK {
            // Return addresses are never zero: the rules and framehop both
            // stop at a zero one.
            let Some(address) = FrameAddress::from_return_address(self.frame.return_address) else {
                break;
            };
            let (caller, learning) = by_framehop(
                state,
                modules,
                address,
                self.frame,
                stack,
                rule == Rule::UNKNOWN,
            );
            misses += u64::from(learning != Learning::NotAsked);
            let Some(caller) = caller else {
                break;
            };
            buf[self.n].write(caller.return_address as usize);
            self.n += 1;
            self.frame = caller;
            match self.by_rules(buf, stack) {
                Some(next) => rule = next,
                None => break,
            }
        }
        if misses != 0 {
            MISSES.fetch_add(misses, Ordering::Relaxed);
        }
        self.n
    }
}

/// What [`by_framehop`] did about a frame's rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Learning {
    /// Nothing: the table already says to ask framehop.
    NotAsked,
    /// Learned it and kept it in the table.
    Kept,
    /// The address is in no loaded object (JIT code, or a stray value):
    /// framehop guessed from the frame pointer, and nothing is kept.
    OutsideModules,
}

/// framehop's step for the frame `callee` (which returns to `address`), for
/// frames the rule table has no compact rule for; if `learn`, also learns
/// the frame's rule.
#[inline(never)]
fn by_framehop(
    state: &mut ThreadState,
    modules: &Modules,
    address: FrameAddress,
    callee: Caller,
    stack: &Stack,
    learn: bool,
) -> (Option<Caller>, Learning) {
    let Caller {
        return_address: ip,
        sp,
        bp,
    } = callee;
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let caller =
        match modules
            .unwinder
            .unwind_frame(address, &mut regs, &mut state.cache, &mut |addr| {
                stack.read(addr).ok_or(())
            }) {
            Ok(Some(return_address)) => Some(Caller {
                return_address,
                sp: regs.sp(),
                bp: regs.bp(),
            }),
            // The end of the stack, or an error: stop here either way.
            Ok(None) | Err(_) => None,
        };
    if !learn {
        return (caller, Learning::NotAsked);
    }
    if !modules.contains(address.address_for_lookup()) {
        return (caller, Learning::OutsideModules);
    }
    let rule = Rule::learn(
        &modules.unwinder,
        &mut state.cache,
        address,
        (ip, sp, bp),
        stack,
        caller,
    );
    if rule.asks_framehop() {
        NOT_COMPACT.fetch_add(1, Ordering::Relaxed);
    }
    RULES.insert(ip, rule);
    (caller, Learning::Kept)
}
