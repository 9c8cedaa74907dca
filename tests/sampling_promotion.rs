//! At the default rate, sampled blocks are promoted to whole pages, so the
//! free path can settle other frees by address alone. These tests run the
//! real allocator: sampled blocks must be page-aligned, keep their contents
//! through reallocation and be found again when freed; unpromoted samples
//! (over-aligned blocks, exact mode) must be found too.

use std::alloc::{alloc, dealloc, Layout};

use memprof::internals::{live_samples, SAMPLED_BLOCK_ALIGN};
use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

/// The tests change process-wide state (rate, gate): one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live samples of `blocks` (address, size): matched on both, since the
/// test's own bookkeeping may be handed a freed block's address.
fn sampled_among(blocks: &[(usize, usize)]) -> Vec<memprof::internals::LiveSample> {
    let set: std::collections::HashSet<(usize, usize)> = blocks.iter().copied().collect();
    live_samples()
        .into_iter()
        .filter(|s| set.contains(&(s.addr, s.size)))
        .collect()
}

/// Live samples not promoted to a page. Samples taken while another
/// test's turn had the whole process exact may still be live (blocks the
/// test harness allocated then), so tests compare with their start.
fn unaligned_live() -> u64 {
    memprof::snapshot().counters.unaligned_live_samples
}

fn vec_blocks(blocks: &[Vec<u8>]) -> Vec<(usize, usize)> {
    blocks
        .iter()
        .map(|b| (b.as_ptr() as usize, b.capacity()))
        .collect()
}

#[inline(never)]
fn promotion_site(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| vec![(i % 251) as u8; 700 + i % 300])
        .collect()
}

#[test]
fn sampled_blocks_are_promoted_and_freed_with_their_real_layout() {
    let _turn = one_at_a_time();
    memprof::set_rate(256 << 10);
    let unaligned_before = unaligned_live();
    let mut blocks = promotion_site(60_000); // ~50 MB: ~200 samples
    let addrs = vec_blocks(&blocks);
    let sampled = sampled_among(&addrs);
    assert!(sampled.len() >= 50, "only {} sampled", sampled.len());
    for s in &sampled {
        assert!(s.is_promoted(), "{s:?}");
        assert_eq!(s.addr % SAMPLED_BLOCK_ALIGN, 0, "{s:?}");
    }
    let c = memprof::snapshot().counters;
    assert!(
        c.unaligned_live_samples <= unaligned_before,
        "{} unaligned, {unaligned_before} before",
        c.unaligned_live_samples
    );
    assert!(c.promotion_padding_bytes >= sampled.len() as u64 * (4096 - 1000));

    // Grow and shrink every block: the promoted ones move by hand, and
    // some new sizes are sampled (and promoted) in turn.
    for (i, b) in blocks.iter_mut().enumerate() {
        b.resize(b.len() + 3000, 7);
        b.truncate(100 + i % 50);
        b.shrink_to_fit();
    }
    for (i, b) in blocks.iter().enumerate() {
        assert!(
            b.iter().all(|&x| x == (i % 251) as u8),
            "block {i} kept its bytes"
        );
    }
    let addrs = vec_blocks(&blocks);
    assert!(sampled_among(&addrs)
        .iter()
        .all(|s| s.is_promoted() && s.addr % SAMPLED_BLOCK_ALIGN == 0));

    drop(blocks);
    let left = sampled_among(&addrs);
    assert!(
        left.is_empty(),
        "every promoted block's free was seen: {left:?}"
    );
    memprof::set_rate(memprof::DEFAULT_RATE);
}

#[test]
fn over_aligned_samples_keep_their_layout_and_are_found_on_free() {
    let _turn = one_at_a_time();
    memprof::set_rate(256 << 10);
    let unaligned_before = unaligned_live();
    // Blocks aligned past a page cannot be promoted (nor need to be: their
    // addresses pass the page gate anyway).
    let layout = Layout::from_size_align(64 << 10, 2 * SAMPLED_BLOCK_ALIGN).unwrap();
    let held: Vec<*mut u8> = (0..200)
        .map(|i| {
            // SAFETY: non-zero size.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: a fresh block of at least 8 bytes.
            unsafe { p.cast::<u64>().write(i) };
            p
        })
        .collect();
    let addrs: Vec<_> = held.iter().map(|&p| (p as usize, layout.size())).collect();
    let sampled = sampled_among(&addrs);
    assert!(
        sampled.len() >= 10,
        "12.5 MiB at 256 KiB: {}",
        sampled.len()
    );
    assert!(sampled.iter().all(|s| !s.is_promoted()));
    assert!(unaligned_live() <= unaligned_before);
    for (i, p) in held.into_iter().enumerate() {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe {
            assert_eq!(p.cast::<u64>().read(), i as u64);
            dealloc(p, layout);
        }
    }
    assert!(sampled_among(&addrs).is_empty());
    memprof::set_rate(memprof::DEFAULT_RATE);
}

#[test]
fn exact_mode_samples_keep_their_layout() {
    let _turn = one_at_a_time();
    let unaligned_before = unaligned_live();
    memprof::set_thread_rate(Some(1));
    let blocks: Vec<Box<[u8; 24]>> = (0..1000).map(|i| Box::new([i as u8; 24])).collect();
    memprof::set_thread_rate(None);
    let addrs: Vec<_> = blocks.iter().map(|b| (b.as_ptr() as usize, 24)).collect();
    let sampled = sampled_among(&addrs);
    assert_eq!(sampled.len(), 1000, "every block sampled");
    assert!(sampled.iter().all(|s| !s.is_promoted()));
    assert!(unaligned_live() >= unaligned_before + 900);
    drop(blocks);
    assert!(sampled_among(&addrs).is_empty());
    assert!(
        unaligned_live() <= unaligned_before,
        "every exact sample's free was counted"
    );
}

/// Four threads allocate, grow, shrink and free blocks while the rate flips
/// between exact (nothing promoted, the gate shuts) and promoting rates
/// (the gate reopens): every block keeps its bytes, and once all are freed
/// no sample of them is left, so no free slipped past the gate.
#[test]
fn rate_flips_under_load_lose_no_free_and_no_byte() {
    let _turn = one_at_a_time();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                memprof::set_rate(if i.is_multiple_of(2) { 1 } else { 256 << 10 });
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut ring: Vec<(Vec<u8>, u8)> = Vec::new();
                let mut seen: Vec<(usize, usize)> = Vec::new();
                for round in 0..40_000u64 {
                    let r = next();
                    let tag = (r >> 8) as u8;
                    let size = 1 + (r % 9000) as usize;
                    if ring.len() < 256 {
                        ring.push((vec![tag; size], tag));
                        continue;
                    }
                    let slot = &mut ring[(r >> 20) as usize % 256];
                    assert!(slot.0.iter().all(|&b| b == slot.1), "round {round}");
                    if r >> 62 == 0 {
                        // Grow or shrink in place of a fresh block.
                        slot.0.resize(size, slot.1);
                        slot.0.shrink_to_fit();
                    } else {
                        seen.push((slot.0.as_ptr() as usize, slot.0.capacity()));
                        *slot = (vec![tag; size], tag);
                    }
                }
                for (block, tag) in &ring {
                    assert!(block.iter().all(|b| b == tag));
                    seen.push((block.as_ptr() as usize, block.capacity()));
                }
                drop(ring);
                seen
            })
        })
        .collect();
    let mut freed = Vec::new();
    for w in workers {
        freed.extend(w.join().unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    memprof::set_rate(memprof::DEFAULT_RATE);
    // A worker's sample left at a freed block's (address, size) means a
    // missed free (blocks reallocated away are not listed: this can only
    // undercount).
    let freed_set: std::collections::HashSet<(usize, usize)> = freed.into_iter().collect();
    let left: Vec<_> = live_samples()
        .into_iter()
        .filter(|s| freed_set.contains(&(s.addr, s.size)) && s.thread > 1)
        .collect();
    assert!(left.is_empty(), "frees missed: {left:?}");
}

/// `alloc_zeroed` at a sample point hands out a zeroed promoted block, even
/// where freed dirty blocks are being reused.
#[test]
fn promoted_zeroed_blocks_are_zero() {
    let _turn = one_at_a_time();
    memprof::set_rate(256 << 10);
    for _ in 0..20 {
        let dirty: Vec<Vec<u8>> = (0..2000).map(|_| vec![0xa5u8; 2048]).collect();
        drop(dirty);
        let zeroed: Vec<Vec<u8>> = (0..2000).map(|_| vec![0u8; 2048]).collect();
        assert!(zeroed.iter().all(|b| b.iter().all(|&x| x == 0)));
        let sampled = sampled_among(&vec_blocks(&zeroed));
        assert!(sampled.iter().all(|s| s.is_promoted()));
    }
    memprof::set_rate(memprof::DEFAULT_RATE);
}
