//! With another inner allocator, jemalloc readings say "not available".
//!
//! tikv-jemalloc-sys still links jemalloc into this binary, so mallctl
//! answers; the readings must notice that it serves nothing.

use memprof::jemalloc::{self, Unavailable};

#[global_allocator]
static ALLOC: memprof::MemProf<std::alloc::System> = memprof::MemProf::new(std::alloc::System);

#[test]
fn readings_report_not_available_without_panicking() {
    let _data: Vec<u64> = (0..100_000).collect();

    assert_eq!(jemalloc::serves_global_allocator(), Ok(false));

    let why = jemalloc::stats().expect_err("jemalloc is not the allocator");
    assert_eq!(why, Unavailable::NotGlobalAllocator);
    assert!(why.to_string().contains("not available"), "{why}");
    assert_eq!(
        serde_json::to_string(&why).expect("serializes"),
        r#"{"reason":"not_global_allocator"}"#
    );

    assert_eq!(
        jemalloc::stats_with_rss(Some(1 << 20)),
        Err(Unavailable::NotGlobalAllocator)
    );
    assert_eq!(jemalloc::purge(), Err(Unavailable::NotGlobalAllocator));
}
