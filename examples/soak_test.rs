//! Leak and soak tests a user copies into their own `tests/` directory.
//!
//! Run them with `cargo test --release --example soak_test`; run the program
//! (`cargo run --release --example soak_test`) to see the programmatic API,
//! `memprof::testing`, report on a cache.
//!
//! The test binary needs MemProf as its global allocator; each test then
//! records every allocation its thread makes, exactly, while other tests
//! run in parallel.

use std::collections::{HashMap, VecDeque};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// A cache that keeps the most recent `capacity` entries.
pub struct RecentCache {
    capacity: usize,
    order: VecDeque<u64>,
    values: HashMap<u64, String>,
}

impl RecentCache {
    pub fn new(capacity: usize) -> Self {
        RecentCache {
            capacity,
            order: VecDeque::with_capacity(capacity + 1),
            values: HashMap::with_capacity(capacity + 1),
        }
    }

    pub fn insert(&mut self, key: u64, value: String) {
        if self.values.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
    }
}

fn main() {
    let mut cache = RecentCache::new(100);
    let mut key = 0;
    let report = memprof::testing::soak(2_000, 200, || {
        key += 1;
        cache.insert(key, format!("value {key}"));
    });
    println!(
        "after {} warm-up iterations, {} measured: {:+.2} bytes retained per iteration (r² {:.2})",
        report.warmup, report.iterations, report.growth_per_iteration, report.r_squared
    );
    println!(
        "still live from the measured iterations: {} bytes in {} blocks",
        report.retained.bytes, report.retained.blocks
    );
}

#[cfg(test)]
mod tests {
    use super::RecentCache;

    /// Runs once; fails if more than 4 KiB allocated in the body is still
    /// live at its end.
    #[memprof::test(max_leak = "4 KiB")]
    fn parsing_keeps_nothing() {
        let words: Vec<String> = "a b c d e".split(' ').map(str::to_uppercase).collect();
        assert_eq!(words.len(), 5);
    }

    /// Runs the body 2,000 times after 200 warm-up runs; fails when retained
    /// bytes grow by more than 16 B per iteration. A bounded cache passes.
    #[memprof::test(iterations = 2000, warmup = 200, max_growth_per_iter = "16 B")]
    fn recent_cache_is_bounded() {
        thread_local! {
            static CACHE: std::cell::RefCell<(RecentCache, u64)> =
                std::cell::RefCell::new((RecentCache::new(100), 0));
        }
        CACHE.with(|c| {
            let (cache, key) = &mut *c.borrow_mut();
            *key += 1;
            cache.insert(*key, format!("value {key}"));
        });
    }
}
