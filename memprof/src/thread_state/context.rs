//! Tracking contexts: which threads' allocations belong to a tracked body
//! (`memprof::testing::track`, `soak`, `#[memprof::test]`).
//!
//! A context is opened on the body's thread and closed when the body ends.
//! Its members are that thread and every thread created while it is open
//! by a member, at any depth: `std::thread::spawn`, `std::thread::scope`,
//! the worker threads of a runtime built in the body. Members allocate at
//! rate 1 (every allocation recorded) while their context is open, and the
//! context keeps their memprof thread ids, so a test counts exactly what
//! they left live. Threads created by anything else never join: the test
//! harness's threads (libtest starts each test's thread from its main
//! thread), other tests' threads and what they start, and threads that
//! existed before the body began (a global pool), even if they run work for
//! it.
//!
//! # How a new thread learns its creator's context
//!
//! Rust has no hook at thread creation, and a new thread's thread-locals
//! start empty. But Linux copies one harmless per-thread setting from the
//! creating thread to the new one: the timer slack (`PR_SET_TIMERSLACK`, how
//! late the kernel may wake the thread from a timed wait to batch wakeups;
//! 50 µs by default). Opening a context sets its thread's slack to
//! `SLACK_BASE + id` ns (at most 4.1 µs above the default), so every thread
//! the body creates, and every thread those create, starts with that value.
//! A thread's first allocation always takes the slow path (its countdown
//! starts at zero); there, if any context is open, the thread reads its
//! slack once and joins the context it names if that context is still open.
//! So the fast path gains nothing, no lock is taken anywhere, and only a
//! thread born while a context is open pays one `prctl`.
//!
//! The slack also survives `execve`: a process started from a body inherits
//! a mark that means nothing in it. Opening a context notes a mark on its
//! thread that no context of this process set, and never hands out that id.
//!
//! A context names up to [`MAX_MEMBERS`] threads, by memprof id and kernel
//! thread id, in an array mapped when its slot is first used and kept for
//! the process (a joining thread may still write to it as the context
//! closes). Threads past that are counted and not followed, and the test
//! says so. The kernel ids let a test wait for the threads its body started
//! to finish exiting: std frees a scoped thread's bookkeeping on that
//! thread just after `thread::scope` returns.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::thread_state::{self as thread, NO_CONTEXT, UNDECIDED_CONTEXT};

/// Contexts open at once; a body that finds none free waits for one.
const SLOTS: usize = 64;
/// Ids `generation * SLOTS + slot + 1` for this many generations per slot,
/// so a thread left over from a closed context rarely names a later one.
const GENERATIONS: u32 = 64;
/// The largest context id.
const MAX_ID: u32 = SLOTS as u32 * GENERATIONS;
/// A member's timer slack is this plus its context's id, in nanoseconds:
/// the kernel's default slack, plus at most 4.1 µs.
const SLACK_BASE: u64 = 50_000;
/// Threads one context can name.
pub(crate) const MAX_MEMBERS: usize = 1 << 20;
/// A slot's id while it is being set up: matches no thread's mark.
const RESERVED: u32 = u32::MAX;

/// One context's place.
struct Slot {
    /// The open context's id; 0 while free, [`RESERVED`] while opening.
    id: AtomicU32,
    /// Contexts opened here so far, for the next id's generation.
    opened: AtomicU32,
    /// Members registered; those past [`MAX_MEMBERS`] are not named.
    joined: AtomicU32,
    /// `MAX_MEMBERS` entries, mapped on first use: a member's kernel
    /// thread id (0 once it is known to have exited) above its memprof
    /// thread id; 0 for none.
    members: AtomicPtr<AtomicU64>,
}

impl Slot {
    /// The member array; empty until mapped.
    fn members(&self) -> &[AtomicU64] {
        let members = self.members.load(Ordering::Acquire);
        if members.is_null() {
            return &[];
        }
        // SAFETY: a non-null pointer is a mapping of MAX_MEMBERS zeroed
        // `AtomicU64`s (valid when zeroed) made by `map_members` and never
        // unmapped.
        unsafe { core::slice::from_raw_parts(members, MAX_MEMBERS) }
    }

    /// Names `thread` a member of context `id`, if that is still open here
    /// and there is room; false otherwise.
    ///
    /// Entries go from 0 to a thread id and back only by compare-exchange,
    /// so a thread that joins as its context closes (and finds the slot
    /// reopened) can neither overwrite a later member nor stay named.
    fn register(&self, id: u32, thread: u32, os_thread: u32) -> bool {
        let members = self.members();
        if thread == 0 || members.is_empty() {
            return false;
        }
        let member = member_entry(thread, os_thread);
        loop {
            // AcqRel: pairs with the opener's reset of the count.
            let index = self.joined.fetch_add(1, Ordering::AcqRel) as usize;
            let Some(entry) = members.get(index) else {
                // Counted in `joined`: reported as not followed.
                return false;
            };
            if entry
                .compare_exchange(0, member, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                // A late joiner of the slot's previous context holds it.
                continue;
            }
            if self.id.load(Ordering::Acquire) != id {
                // The context closed after the caller's check: take it back.
                let _ = entry.compare_exchange(member, 0, Ordering::AcqRel, Ordering::Relaxed);
                return false;
            }
            return true;
        }
    }
}

static SLOT_TABLE: [Slot; SLOTS] = [const {
    Slot {
        id: AtomicU32::new(0),
        opened: AtomicU32::new(0),
        joined: AtomicU32::new(0),
        members: AtomicPtr::new(core::ptr::null_mut()),
    }
}; SLOTS];

fn member_entry(thread: u32, os_thread: u32) -> u64 {
    u64::from(os_thread) << 32 | u64::from(thread)
}

/// The memprof thread id of a member entry.
fn memprof_id(entry: u64) -> u32 {
    entry as u32
}

/// The kernel thread id of a member entry (0: exited or unknown).
fn os_id(entry: u64) -> u32 {
    (entry >> 32) as u32
}

/// Contexts open now: while 0, threads settle without reading their slack.
static OPEN: AtomicU32 = AtomicU32::new(0);

/// Ids this process never hands out: marks its threads carried from
/// elsewhere (see the module docs). A bit per id.
static FOREIGN: [AtomicU64; MAX_ID as usize / 64 + 1] =
    [const { AtomicU64::new(0) }; MAX_ID as usize / 64 + 1];

fn slot_of(id: u32) -> &'static Slot {
    &SLOT_TABLE[(id as usize - 1) % SLOTS]
}

fn is_open(id: u32) -> bool {
    (1..=MAX_ID).contains(&id) && slot_of(id).id.load(Ordering::Acquire) == id
}

/// The context id a timer slack names, if it is a mark.
fn id_of_slack(slack: u64) -> Option<u32> {
    let id = slack.checked_sub(SLACK_BASE)?;
    (1..=u64::from(MAX_ID)).contains(&id).then_some(id as u32)
}

fn is_foreign(id: u32) -> bool {
    FOREIGN[id as usize / 64].load(Ordering::Relaxed) & (1 << (id % 64)) != 0
}

/// Settles the calling thread's membership; called at every slow path of
/// the allocator, with the thread marked busy, before it reads its rate.
///
/// A thread's first slow path decides whether it joins a context (see the
/// module docs); later ones only notice that its context has closed, and
/// send the thread back to its own rate.
pub(crate) fn settle_thread() {
    match thread::context() {
        NO_CONTEXT => {}
        UNDECIDED_CONTEXT => {
            // A thread created by a member sees the opener's increment: its
            // creation happened after it.
            let joined = if OPEN.load(Ordering::Relaxed) == 0 {
                NO_CONTEXT
            } else {
                join_inherited()
            };
            thread::set_context(joined);
        }
        id => {
            if !is_open(id) {
                thread::set_context(NO_CONTEXT);
                // Place the next sample point afresh at the thread's rate.
                thread::set_generation(u64::MAX);
            }
        }
    }
}

/// Joins the context the calling thread's timer slack names, if open.
fn join_inherited() -> u32 {
    let Some(id) = crate::os::timer_slack_nanos().and_then(id_of_slack) else {
        return NO_CONTEXT;
    };
    let os_thread = crate::os::os_thread_id();
    if !is_open(id) || !slot_of(id).register(id, thread::thread_id(), os_thread) {
        return NO_CONTEXT;
    }
    id
}

/// Maps a slot's member array.
fn map_members() -> Option<NonNull<AtomicU64>> {
    crate::os::map_zeroed(MAX_MEMBERS * core::mem::size_of::<AtomicU64>()).map(NonNull::cast)
}

/// A context open on the calling thread, which is its first member. Closes
/// when dropped, on the same thread.
pub(crate) struct Context {
    id: u32,
    previous_context: u32,
    /// The thread's slack before it was marked; `None` if it could not be
    /// marked, so the threads it starts are not followed.
    previous_slack: Option<u64>,
}

impl Context {
    /// Opens a context with the calling thread as its first member, and
    /// marks the thread so that the threads it starts join too. Waits while
    /// [`SLOTS`] contexts are open.
    pub(crate) fn open() -> Context {
        let own_slack = crate::os::timer_slack_nanos();
        if let Some(id) = own_slack.and_then(id_of_slack) {
            if !is_open(id) || thread::context() != id {
                FOREIGN[id as usize / 64].fetch_or(1 << (id % 64), Ordering::Relaxed);
            }
        }
        let id = reserve();
        let slot = slot_of(id);
        OPEN.fetch_add(1, Ordering::Relaxed);
        let previous_context = thread::set_context(id);
        slot.register(id, thread::thread_id(), crate::os::os_thread_id());
        let mark = SLACK_BASE + u64::from(id);
        let marked = own_slack.is_some()
            && crate::os::set_timer_slack_nanos(mark)
            // Some threads ignore the setting (real-time ones, on recent
            // kernels): only a value read back is a mark.
            && crate::os::timer_slack_nanos() == Some(mark);
        Context {
            id,
            previous_context,
            previous_slack: own_slack.filter(|_| marked),
        }
    }

    /// Whether threads this context's thread starts are followed: false
    /// where the thread could not be marked (no `prctl`, a seccomp filter,
    /// a real-time thread, a system other than Linux).
    pub(crate) fn follows_new_threads(&self) -> bool {
        self.previous_slack.is_some()
    }

    /// The entries naming members so far.
    fn entries(&self) -> &'static [AtomicU64] {
        let slot = slot_of(self.id);
        let named = (slot.joined.load(Ordering::Acquire) as usize).min(MAX_MEMBERS);
        let members = slot.members();
        &members[..named.min(members.len())]
    }

    /// memprof ids of the threads named members so far, this one included.
    pub(crate) fn members(&self) -> Vec<u32> {
        self.entries()
            .iter()
            .map(|m| memprof_id(m.load(Ordering::Acquire)))
            .filter(|&t| t != 0)
            .collect()
    }

    /// Members other than the calling thread that have not exited yet (as
    /// far as the system can tell); those found gone are not checked again.
    pub(crate) fn members_running(&self) -> u64 {
        let me = crate::os::os_thread_id();
        let mut running = 0;
        for entry in self.entries() {
            let member = entry.load(Ordering::Acquire);
            let os_thread = os_id(member);
            if os_thread == 0 || os_thread == me {
                continue;
            }
            if crate::os::os_thread_running(os_thread) {
                running += 1;
            } else {
                let gone = member_entry(memprof_id(member), 0);
                let _ = entry.compare_exchange(member, gone, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        running
    }

    /// Threads that joined past [`MAX_MEMBERS`], whose allocations are not
    /// counted.
    pub(crate) fn not_followed(&self) -> u64 {
        let joined = slot_of(self.id).joined.load(Ordering::Acquire) as usize;
        joined.saturating_sub(MAX_MEMBERS) as u64
    }
}

/// Takes a free slot and returns the id of the context it now holds (with
/// its member array mapped when it could be).
fn reserve() -> u32 {
    loop {
        for (index, slot) in SLOT_TABLE.iter().enumerate() {
            if slot
                .id
                .compare_exchange(0, RESERVED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if slot.members.load(Ordering::Acquire).is_null() {
                if let Some(members) = map_members() {
                    slot.members.store(members.as_ptr(), Ordering::Release);
                }
            }
            // Skip the generations whose ids are foreign marks.
            let id = (0..GENERATIONS)
                .map(|_| {
                    let generation = slot.opened.fetch_add(1, Ordering::Relaxed) % GENERATIONS;
                    generation * SLOTS as u32 + index as u32 + 1
                })
                .find(|&id| !is_foreign(id));
            let Some(id) = id else {
                slot.id.store(0, Ordering::Release);
                continue;
            };
            slot.joined.store(0, Ordering::Release);
            // Release: joiners that see the id see the array and the count.
            slot.id.store(id, Ordering::Release);
            return id;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(slack) = self.previous_slack {
            crate::os::set_timer_slack_nanos(slack);
        }
        thread::set_context(self.previous_context);
        thread::force_redraw();
        let slot = slot_of(self.id);
        slot.id.store(RESERVED, Ordering::Release);
        // A later context must not find these members: clear what was named.
        let named = (slot.joined.load(Ordering::Acquire) as usize).min(MAX_MEMBERS);
        for entry in slot.members().iter().take(named) {
            entry.store(0, Ordering::Relaxed);
        }
        slot.id.store(0, Ordering::Release);
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_marks_name_ids_in_range_only() {
        assert_eq!(id_of_slack(SLACK_BASE), None, "the kernel default");
        assert_eq!(id_of_slack(SLACK_BASE + 1), Some(1));
        assert_eq!(id_of_slack(SLACK_BASE + u64::from(MAX_ID)), Some(MAX_ID));
        assert_eq!(id_of_slack(SLACK_BASE + u64::from(MAX_ID) + 1), None);
        assert_eq!(id_of_slack(0), None);
    }

    #[test]
    fn a_foreign_mark_is_never_handed_out() {
        std::thread::spawn(|| {
            // As if this process were started from a body of context 1.
            assert!(crate::os::set_timer_slack_nanos(SLACK_BASE + 1));
            let context = Context::open();
            assert_ne!(context.id, 1);
            assert!(is_foreign(1));
            assert!(context.follows_new_threads());
            assert_eq!(
                crate::os::timer_slack_nanos(),
                Some(SLACK_BASE + u64::from(context.id)),
                "marked"
            );
            assert_eq!(context.members(), [thread::thread_id()]);
            assert_eq!(context.members_running(), 0, "not counting itself");
            drop(context);
            assert_eq!(
                crate::os::timer_slack_nanos(),
                Some(SLACK_BASE + 1),
                "restored"
            );
        })
        .join()
        .unwrap();
    }
}
