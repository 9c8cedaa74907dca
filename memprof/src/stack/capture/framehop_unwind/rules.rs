//! Compact unwind rules for return addresses, learned from framehop and kept
//! in one table for the whole process.
//!
//! framehop caches a rule per address, but in a cache per thread (every new
//! thread starts cold, and each cache is about 11 KiB), and running a cached
//! rule costs about 8 ns a frame: a probe, a dispatch over seven rule kinds,
//! and a closure call with `Result` plumbing for every stack read. Yet every
//! rule framehop caches for a caller's frame on x86_64 has one shape:
//!
//! * the caller's stack pointer is the callee's `sp` or `bp` plus an offset;
//! * the caller's `bp` is the callee's, or the word at `sp` or `bp` plus an
//!   offset;
//! * the return address is the word just below the caller's stack pointer.
//!
//! A [`Rule`] holds that shape in 26 bits, so an address and its rule fit in
//! one `u64`, and the [`RuleTable`] is read and written with single atomic
//! loads and stores: no locks, no torn entries, shared by every thread.
//!
//! # Learning a rule
//!
//! framehop's rules are private, so memprof learns each one by watching
//! framehop unwind the frame with made-up registers over a made-up stack in
//! which every word names its own address: the registers framehop returns say
//! which offsets the rule used. A rule is kept only if two probes with
//! different made-up registers and the real unwind step all agree with it.
//! Frames of another shape (CFA computed by a DWARF expression that reads
//! memory, as in signal trampolines) get [`Rule::ASK_FRAMEHOP`] and are
//! unwound by framehop every time.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder as _};

use super::modules::NativeUnwinder;

/// framehop's per-thread cache, consulted only when the table has no rule.
pub(super) type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// An unwind rule for one return address; see the module docs.
///
/// Bit 0: the caller's `sp` is found from `bp` (else from `sp`); bits 1-2:
/// how its `bp` is found (`KEEP_BP`, `BP_AT_SP`, `BP_AT_BP`, or `ASK`,
/// framehop must unwind the frame); bits 3-14: the `sp` offset in words, at
/// least one, so that masking with `SP_BYTES` gives it in bytes and no rule
/// is zero; bits 15-25: the `bp` slot's offset in words, signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rule(u32);

const FROM_SP: u32 = 0;
const FROM_BP: u32 = 1;
const KEEP_BP: u32 = 0;
const BP_AT_SP: u32 = 1;
const BP_AT_BP: u32 = 2;
const ASK: u32 = 3;
const SP_BYTES: u32 = 0x7ff8;
const RULE_BITS: u32 = 26;
const MAX_SP_WORDS: i64 = (1 << 12) - 1;
const BP_WORDS: core::ops::RangeInclusive<i64> = -(1 << 10)..=(1 << 10) - 1;

/// What one step of the walk found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Caller {
    pub(super) return_address: u64,
    pub(super) sp: u64,
    pub(super) bp: u64,
}

/// The readable part of the current thread's stack: `words` words from
/// `lo`, which is word-aligned.
#[derive(Clone, Copy)]
pub(super) struct Stack {
    lo: u64,
    words: u64,
}

impl Stack {
    /// The whole words of `[sp, hi)`.
    pub(super) fn new(sp: u64, hi: u64) -> Stack {
        let lo = sp.saturating_add(7) & !7;
        Stack {
            lo,
            words: hi.saturating_sub(lo) / 8,
        }
    }

    /// The word at `addr`, if it is aligned and lies in the stack.
    #[inline(always)]
    pub(super) fn read(&self, addr: u64) -> Option<u64> {
        // One comparison checks both: `lo` is aligned, so an unaligned
        // `addr` leaves low bits in the difference, which the rotation moves
        // to the top (far past `words`), as it does a wrapped difference.
        if addr.wrapping_sub(self.lo).rotate_right(3) < self.words {
            // SAFETY: the word lies in `[lo, lo + 8 * words)`, inside the live
            // part of this thread's own stack (`lo` is at or above the stack
            // pointer when the walk began), mapped and readable; `addr` is
            // aligned. Volatile: the word may be padding the compiler never
            // wrote.
            Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
        } else {
            None
        }
    }
}

impl Rule {
    /// No rule learned for the address: an empty way of the table.
    pub(super) const UNKNOWN: Rule = Rule(0);
    /// A frame framehop must unwind itself, every time.
    pub(super) const ASK_FRAMEHOP: Rule = Rule(ASK << 1);
    /// The outermost frame (its CFI marks the return address undefined, as
    /// in `clone3` and `_start`): the walk ends here.
    pub(super) const END_OF_STACK: Rule = Rule(ASK << 1 | FROM_BP);

    fn new(sp_from: u32, sp_words: i64, bp_from: u32, bp_words: i64) -> Rule {
        if !(1..=MAX_SP_WORDS).contains(&sp_words) || !BP_WORDS.contains(&bp_words) {
            return Rule::ASK_FRAMEHOP;
        }
        let bp_field = (bp_words as u32) & ((1 << 11) - 1);
        Rule(sp_from | (bp_from << 1) | ((sp_words as u32) << 3) | (bp_field << 15))
    }

    /// The caller's `sp` is this far above the callee's `sp` or `bp`.
    #[inline(always)]
    fn sp_bytes(self) -> u64 {
        u64::from(self.0 & SP_BYTES)
    }

    /// The caller's `bp` is saved this far from the callee's `sp` or `bp`.
    #[inline(always)]
    fn bp_bytes(self) -> i64 {
        i64::from(((self.0 as i32) << (32 - RULE_BITS)) >> (32 - RULE_BITS + 15)) * 8
    }

    #[inline(always)]
    fn sp_from(self) -> u32 {
        self.0 & 1
    }

    #[inline(always)]
    fn bp_from(self) -> u32 {
        (self.0 >> 1) & 3
    }

    /// Whether framehop must unwind this frame.
    #[inline(always)]
    pub(super) fn asks_framehop(self) -> bool {
        self == Rule::ASK_FRAMEHOP
    }

    /// Whether [`Rule::step`] follows this rule: every rule does but
    /// [`Rule::ASK_FRAMEHOP`] and [`Rule::END_OF_STACK`], the only ones with
    /// no `sp` offset, so one test on the walk's hot path sets both apart.
    #[inline(always)]
    pub(super) fn is_compact(self) -> bool {
        self.0 & SP_BYTES != 0
    }

    /// The caller's frame, found from this frame's registers; `None` where
    /// framehop's own step would stop (the end of the stack, a read outside
    /// the stack, a zero return address or frame pointer), and for the rules
    /// that are not compact.
    ///
    /// framehop also stops on an overflowing offset and on a step that does
    /// not move `sp` up. Neither needs its own test here: every rule moves
    /// `sp` up by at least a word (checked when the caller's `sp` comes from
    /// `bp`, which is also how a zero or wrapping `bp` stops the walk), `sp`
    /// lies in the stack, and a wrapped slot address lies outside it.
    #[inline(always)]
    pub(super) fn step(self, sp: u64, bp: u64, stack: &Stack) -> Option<Caller> {
        if !self.is_compact() {
            return None;
        }
        let new_sp = if self.sp_from() == FROM_BP {
            let new_sp = bp.wrapping_add(self.sp_bytes());
            if new_sp <= sp {
                return None;
            }
            new_sp
        } else {
            sp.wrapping_add(self.sp_bytes())
        };
        let new_bp = match self.bp_from() {
            KEEP_BP => bp,
            // `BP_AT_BP`: compact rules never ask framehop.
            from => {
                let base = if from == BP_AT_SP { sp } else { bp };
                stack.read(base.wrapping_add_signed(self.bp_bytes()))?
            }
        };
        let return_address = stack.read(new_sp.wrapping_sub(8))?;
        if return_address == 0 {
            return None;
        }
        Some(Caller {
            return_address,
            sp: new_sp,
            bp: new_bp,
        })
    }

    /// Learns the rule framehop applies to the frame that returns to
    /// `address`, and checks it against `real`, what framehop's step did on
    /// the real registers `(ip, sp, bp)`.
    pub(super) fn learn(
        unwinder: &NativeUnwinder,
        cache: &mut Cache,
        address: FrameAddress,
        (ip, sp, bp): (u64, u64, u64),
        stack: &Stack,
        real: Option<Caller>,
    ) -> Rule {
        let first = probe(unwinder, cache, address, ip, PROBES[0]);
        let second = probe(unwinder, cache, address, ip, PROBES[1]);
        if first != second || first.asks_framehop() || first.step(sp, bp, stack) != real {
            return Rule::ASK_FRAMEHOP;
        }
        first
    }
}

/// Made-up `(sp, bp)` pairs for probes: far apart, so an offset from one
/// can never be mistaken for an offset from the other.
const PROBES: [(u64, u64); 2] = [
    (1 << 40, (1 << 40) + (1 << 32)),
    (1 << 42, (1 << 42) + (1 << 36)),
];
/// Marks a made-up stack word; the low bits are the word's own address.
const WORD_TAG: u64 = 0x5a << 56;
const ADDRESS_MASK: u64 = (1 << 56) - 1;

/// framehop's step for `address` on made-up registers, read back as a rule.
fn probe(
    unwinder: &NativeUnwinder,
    cache: &mut Cache,
    address: FrameAddress,
    ip: u64,
    (sp, bp): (u64, u64),
) -> Rule {
    let mut made_up_stack = |addr: u64| Ok(WORD_TAG | (addr & ADDRESS_MASK));
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let return_address = match unwinder.unwind_frame(address, &mut regs, cache, &mut made_up_stack)
    {
        Ok(Some(return_address)) => return_address,
        // With a non-zero bp and no zero word on the made-up stack, only an
        // end-of-stack rule stops the walk.
        Ok(None) => return Rule::END_OF_STACK,
        Err(_) => return Rule::ASK_FRAMEHOP,
    };
    let (new_sp, new_bp) = (regs.sp(), regs.bp());
    if return_address != WORD_TAG | (new_sp.wrapping_sub(8) & ADDRESS_MASK) {
        return Rule::ASK_FRAMEHOP;
    }
    let words = |from: u64, to: u64| {
        let d = to.wrapping_sub(from) as i64;
        (d % 8 == 0).then_some(d / 8)
    };
    let near = |w: Option<i64>| w.filter(|w| (-(1 << 20)..(1 << 20)).contains(w));
    let (sp_from, sp_words) = match (near(words(sp, new_sp)), near(words(bp, new_sp))) {
        (Some(w), _) => (FROM_SP, w),
        (None, Some(w)) => (FROM_BP, w),
        (None, None) => return Rule::ASK_FRAMEHOP,
    };
    let (bp_from, bp_words) = if new_bp == bp {
        (KEEP_BP, 0)
    } else if new_bp & !ADDRESS_MASK == WORD_TAG {
        let slot = new_bp & ADDRESS_MASK;
        match (near(words(sp, slot)), near(words(bp, slot))) {
            (Some(w), _) => (BP_AT_SP, w),
            (None, Some(w)) => (BP_AT_BP, w),
            (None, None) => return Rule::ASK_FRAMEHOP,
        }
    } else {
        return Rule::ASK_FRAMEHOP;
    };
    Rule::new(sp_from, sp_words, bp_from, bp_words)
}

/// Sets of the table; a set is half a cache line.
const SET_BITS: u32 = 10;
const SETS: usize = 1 << SET_BITS;
const WAYS: usize = 4;
/// Return addresses at or above this are not kept (the tag would not fit).
const ADDRESS_LIMIT: u64 = 1 << (64 - RULE_BITS + SET_BITS);

#[repr(align(32))]
struct Set([AtomicU64; WAYS]);

/// The process-wide rule table: 4096 entries of `tag << 26 | rule`, keyed
/// by return address. Bits 5-14 of the address pick the set, so the set's
/// byte offset is the address masked (the walk's critical path is a chain
/// of loads; no hashing lengthens it); the tag is the address's other bits.
/// 32 KiB, in the binary's zeroed data.
pub(super) struct RuleTable {
    sets: [Set; SETS],
    next_victim: AtomicU32,
}

pub(super) static RULES: RuleTable = RuleTable {
    sets: [const { Set([const { AtomicU64::new(0) }; WAYS]) }; SETS],
    next_victim: AtomicU32::new(0),
};

/// The set and tag of a return address.
#[inline(always)]
fn slot(address: u64) -> (usize, u64) {
    let set = (address >> 5) as usize & (SETS - 1);
    let tag = (address & 31) | (address >> (5 + SET_BITS) << 5);
    (set, tag)
}

impl RuleTable {
    /// The rule for the frame that returns to `address`, if learned.
    #[cfg(test)]
    fn get(&self, address: u64) -> Option<Rule> {
        let rule = self.rule(address);
        (rule != Rule::UNKNOWN).then_some(rule)
    }

    /// The rule for the frame that returns to `address`, or
    /// [`Rule::UNKNOWN`].
    #[inline(always)]
    pub(super) fn rule(&self, address: u64) -> Rule {
        let (set, tag) = slot(address);
        for way in &self.sets[set].0 {
            let entry = way.load(Ordering::Relaxed);
            if entry >> RULE_BITS == tag {
                // An empty way matches the tag zero, of addresses below
                // 32 KiB; none is kept, so it reads as `UNKNOWN` too.
                return Rule((entry & ((1 << RULE_BITS) - 1)) as u32);
            }
        }
        Rule::UNKNOWN
    }

    /// Keeps `rule` for `address`, in a free way of its set, else in place
    /// of an entry chosen round-robin.
    pub(super) fn insert(&self, address: u64, rule: Rule) {
        if !(1 << (5 + SET_BITS)..ADDRESS_LIMIT).contains(&address) || rule.0 == 0 {
            return;
        }
        let (set, tag) = slot(address);
        let ways = &self.sets[set].0;
        let way = ways
            .iter()
            .position(|w| w.load(Ordering::Relaxed) == 0)
            .unwrap_or_else(|| self.next_victim.fetch_add(1, Ordering::Relaxed) as usize % WAYS);
        ways[way].store(tag << RULE_BITS | u64::from(rule.0), Ordering::Relaxed);
    }

    /// Forgets every rule: objects were loaded or unloaded, so an address
    /// may now hold other code. Called with the loader's lock held, as are
    /// all inserts (see `modules`), so no rule learned from the old tables
    /// is inserted after this.
    pub(super) fn forget_all(&self) {
        for set in &self.sets {
            for way in &set.0 {
                way.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_their_fields() {
        let r = Rule::new(FROM_SP, 4095, BP_AT_SP, -1024);
        assert_eq!((r.sp_from(), r.bp_from()), (FROM_SP, BP_AT_SP));
        assert_eq!((r.sp_bytes(), r.bp_bytes()), (4095 * 8, -1024 * 8));
        assert!(r.0 < 1 << RULE_BITS);
        let r = Rule::new(FROM_BP, 1, BP_AT_BP, 1023);
        assert_eq!((r.sp_from(), r.bp_from()), (FROM_BP, BP_AT_BP));
        assert_eq!((r.sp_bytes(), r.bp_bytes()), (8, 1023 * 8));
        assert!(!r.asks_framehop() && Rule::ASK_FRAMEHOP.asks_framehop());
        assert!(!Rule::END_OF_STACK.asks_framehop());
        assert_eq!(Rule::new(FROM_SP, 4096, KEEP_BP, 0), Rule::ASK_FRAMEHOP);
        assert_eq!(Rule::new(FROM_BP, 2, BP_AT_BP, 1024), Rule::ASK_FRAMEHOP);
        assert_eq!(Rule::new(FROM_SP, 0, KEEP_BP, 0), Rule::ASK_FRAMEHOP);
    }

    #[test]
    fn steps_follow_the_rule_and_stop_where_framehop_would() {
        // A made-up stack: words at [base, base + 64).
        let words: [u64; 8] = [0, 0x1111, 0xaaaa, 0, 0, 0x2222, 0x3333, 0];
        let base = words.as_ptr() as u64;
        let stack = Stack::new(base, base + 64);
        // sp + 16 words up, bp unchanged: the return address is word 1.
        let just_return = Rule::new(FROM_SP, 2, KEEP_BP, 0);
        let c = just_return.step(base, 77, &stack).expect("a caller");
        assert_eq!((c.return_address, c.sp, c.bp), (0x1111, base + 16, 77));
        // Frame pointer: bp at word 4 holds the caller's bp (0, the end of
        // the chain is still a valid caller), return address at word 5.
        let frame_pointer = Rule::new(FROM_BP, 2, BP_AT_BP, 0);
        let c = frame_pointer
            .step(base, base + 32, &stack)
            .expect("a caller");
        assert_eq!((c.return_address, c.sp, c.bp), (0x2222, base + 48, 0));
        // A zero frame pointer ends the walk, as does a zero return address
        // or a read outside the stack.
        assert_eq!(frame_pointer.step(base, 0, &stack), None);
        assert_eq!(
            Rule::new(FROM_SP, 1, KEEP_BP, 0).step(base, 0, &stack),
            None
        );
        assert_eq!(
            Rule::new(FROM_SP, 9, KEEP_BP, 0).step(base, 0, &stack),
            None
        );
        assert_eq!(
            Rule::new(FROM_SP, 2, BP_AT_SP, -1).step(base, 0, &stack),
            None
        );
        // bp restored from a slot above sp.
        let restore = Rule::new(FROM_SP, 7, BP_AT_SP, 2);
        let c = restore.step(base, 5, &stack).expect("a caller");
        assert_eq!((c.return_address, c.sp, c.bp), (0x3333, base + 56, 0xaaaa));
        assert_eq!(Rule::ASK_FRAMEHOP.step(base, 5, &stack), None);
        assert_eq!(Rule::END_OF_STACK.step(base, base + 32, &stack), None);
    }

    #[test]
    fn stack_reads_stay_in_whole_aligned_words() {
        let words: [u64; 4] = [10, 11, 12, 13];
        let base = words.as_ptr() as u64;
        // From an unaligned sp: the first whole word is the second.
        let stack = Stack::new(base + 3, base + 32);
        assert_eq!(stack.read(base), None);
        assert_eq!(stack.read(base + 8), Some(11));
        assert_eq!(stack.read(base + 24), Some(13));
        assert_eq!(stack.read(base + 12), None);
        assert_eq!(stack.read(base + 32), None);
        assert_eq!(stack.read(base.wrapping_sub(1 << 40)), None);
        assert_eq!(stack.read(u64::MAX - 7), None);
        // A top that is not a whole word past the last one.
        let stack = Stack::new(base, base + 31);
        assert_eq!(stack.read(base + 16), Some(12));
        assert_eq!(stack.read(base + 24), None);
        assert_eq!(Stack::new(base + 8, base).read(base + 8), None);
    }

    fn empty_table() -> Box<RuleTable> {
        Box::new(RuleTable {
            sets: [const { Set([const { AtomicU64::new(0) }; WAYS]) }; SETS],
            next_victim: AtomicU32::new(0),
        })
    }

    #[test]
    fn the_table_keeps_one_rule_per_address() {
        let table = empty_table();
        let rule = |w| Rule::new(FROM_SP, w, KEEP_BP, 0);
        let base = 0x5555_5555_0000u64;
        for i in 0..64u64 {
            table.insert(base + i * 4096, rule(1 + i as i64));
        }
        // Addresses sharing a tag, or their low bits, stay apart.
        table.insert(base + 1, rule(200));
        for i in 0..64u64 {
            let got = table.get(base + i * 4096).map(Rule::sp_bytes);
            assert!(got.is_none() || got == Some(8 + i * 8), "{i}: {got:?}");
        }
        assert_eq!(table.get(base + 1), Some(rule(200)));
        assert_eq!(table.get(base + 2), None);
        // Too high to tag: not kept.
        table.insert(ADDRESS_LIMIT, rule(1));
        assert_eq!(table.get(ADDRESS_LIMIT), None);
    }

    #[test]
    fn a_full_set_keeps_its_newest_four() {
        let table = empty_table();
        let rule = |w| Rule::new(FROM_SP, w, KEEP_BP, 0);
        let base = 0x5555_5555_0000u64;
        let (set, _) = slot(base);
        let same_set: Vec<u64> = (1..)
            .map(|i| base + i * 1024 * 1024)
            .filter(|&a| slot(a).0 == set)
            .take(5)
            .collect();
        for (i, &a) in same_set.iter().enumerate() {
            table.insert(a, rule(300 + i as i64));
        }
        assert_eq!(table.get(same_set[0]), None);
        for (i, &a) in same_set.iter().enumerate().skip(1) {
            assert_eq!(table.get(a), Some(rule(300 + i as i64)));
        }
        table.forget_all();
        assert!(same_set.iter().all(|&a| table.get(a).is_none()));
    }
}
