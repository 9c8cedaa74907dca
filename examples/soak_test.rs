//! Leak and soak tests a user copies into their own `tests/` directory.
//!
//! Run them with `cargo test --release --example soak_test`; run the program
//! (`cargo run --release --example soak_test`) to see the programmatic API,
//! `memprof::testing`, report on a cache.
//!
//! The test binary needs MemProf as its global allocator; each test then
//! records every allocation made by its thread and by the threads it starts,
//! exactly, while other tests run in parallel without being counted.

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
        "stacks whose live bytes grew after warmup: {} ({} bytes in all)",
        report.growth.stacks.len(),
        report.growth.bytes
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

    /// Runs once; the threads the test starts are counted too, so a leak
    /// in a worker fails the test as one on the test's own thread would.
    #[memprof::test(max_leak = "4 KiB")]
    fn parallel_parsing_keeps_nothing() {
        let lines = ["a b c", "d e f", "g h i"];
        let words: usize = std::thread::scope(|s| {
            let workers: Vec<_> = lines
                .iter()
                .map(|line| s.spawn(move || line.split(' ').map(str::to_uppercase).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(words, 9);
    }

    /// Runs the body 2,000 times after 200 warm-up runs; fails when the
    /// bytes its blocks hold live grow by more than 16 B per iteration, net
    /// of what it frees. A bounded cache passes.
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
