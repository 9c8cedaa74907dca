//! Stacks lead with the program's code, not the allocator's plumbing, in
//! every build profile: the allocator shim (`__rust_alloc`, whose debug
//! info points at the `#[global_allocator]` line) and the standard library's
//! allocation frames (`alloc::alloc`, `RawVec`, `Vec::with_capacity`,
//! `String` growth, `Box::new`) are trimmed from the leaf end, as Go's pprof
//! drops its runtime's allocation frames. `Trim::None` keeps them.
//!
//! CI runs this file in a debug build as well as in the release suite:
//! debug builds keep every one of those frames un-inlined.

use memprof::profile::snapshot_with;
use memprof::profile::Frame;
use memprof::profile::Trim;
use std::hint::black_box;
use std::sync::Arc;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

#[inline(never)]
fn user_with_capacity() -> Vec<u64> {
    Vec::with_capacity(black_box(1000))
}

#[inline(never)]
fn user_vec_macro() -> Vec<u8> {
    vec![7u8; black_box(3000)]
}

#[inline(never)]
fn user_box_new() -> Box<[u64; 64]> {
    Box::new(black_box([3u64; 64]))
}

#[inline(never)]
fn user_string_growth() -> String {
    let mut s = String::new();
    for _ in 0..black_box(100) {
        s.push_str("grow ");
    }
    s
}

#[inline(never)]
fn user_collect() -> Vec<u32> {
    (0..black_box(500u32)).map(|i| i * 3).collect()
}

const USER_FUNCTIONS: [&str; 5] = [
    "user_with_capacity",
    "user_vec_macro",
    "user_box_new",
    "user_string_growth",
    "user_collect",
];

fn names(frames: &[Arc<Frame>]) -> Vec<&str> {
    frames.iter().map(|f| f.function.as_str()).collect()
}

/// The leaf-most frame that names `user` and the frames before it.
fn leaf_until<'a>(frames: &'a [Arc<Frame>], user: &str) -> Option<&'a [Arc<Frame>]> {
    let at = frames.iter().position(|f| f.function.contains(user))?;
    Some(&frames[..=at])
}

#[test]
fn every_view_leads_with_the_function_that_allocated() {
    let (kept, retained) = memprof::testing::track(|| {
        (
            user_with_capacity(),
            user_vec_macro(),
            user_box_new(),
            user_string_growth(),
            user_collect(),
        )
    });
    for user in USER_FUNCTIONS {
        let stack = retained
            .stacks
            .iter()
            .find(|s| s.frames.iter().any(|f| f.function.contains(user)))
            .unwrap_or_else(|| panic!("no retained stack names {user}: {retained:#?}"));
        assert!(
            stack.frames[0].function.contains(user),
            "the first frame of {user}'s stack must be {user}, not the allocator's: {:?}",
            names(&stack.frames)
        );
        let site = memprof::profile::program_site(&stack.frames);
        let first = site.split(" <- ").next().unwrap_or_default();
        assert!(first.contains(user), "{user}'s site reads {site}");
    }

    // The snapshot (every view and pprof are drawn from it) trims the same
    // way; untrimmed, the plumbing is there to see.
    let trimmed = snapshot_with(Trim::Allocation);
    let full = snapshot_with(Trim::None);
    for user in USER_FUNCTIONS {
        let in_trimmed = trimmed
            .stacks
            .iter()
            .filter_map(|s| leaf_until(&s.frames, user))
            .next()
            .unwrap_or_else(|| panic!("no stack names {user} in the snapshot"));
        assert_eq!(
            in_trimmed.len(),
            1,
            "{user} must be the leaf: {:?}",
            names(in_trimmed)
        );
        let in_full = full
            .stacks
            .iter()
            .filter_map(|s| leaf_until(&s.frames, user))
            .max_by_key(|frames| frames.len())
            .unwrap_or_else(|| panic!("no stack names {user} in the untrimmed snapshot"));
        assert!(
            in_full.len() > 1
                && in_full[..in_full.len() - 1]
                    .iter()
                    .any(|f| f.function.contains("alloc")),
            "untrimmed, {user}'s stack shows the allocation frames: {:?}",
            names(in_full)
        );
    }
    drop(kept);
}

mod parser {
    pub mod tokens {
        /// Always inlined into its caller: its frame exists only in the
        /// debug info's inlining records.
        #[inline(always)]
        pub fn inlined_token_buffer(n: usize) -> Vec<u8> {
            std::hint::black_box(vec![5u8; n])
        }

        #[inline(never)]
        pub fn tokenize() -> Vec<u8> {
            inlined_token_buffer(std::hint::black_box(4321))
        }
    }
}

/// Names carry their module path, inlined frames included, as pprof users
/// filter on them: with `debug = "limited"` (this workspace's release
/// profile) or a debug build. `line-tables-only` debug info names an
/// inlined frame `inlined_token_buffer` alone.
#[test]
fn inlined_frames_carry_their_module_path() {
    let (kept, retained) = memprof::testing::track(parser::tokens::tokenize);
    let stack = retained
        .stacks
        .iter()
        .find(|s| {
            s.frames
                .iter()
                .any(|f| f.function.contains("inlined_token_buffer"))
        })
        .unwrap_or_else(|| panic!("no stack names inlined_token_buffer: {retained:#?}"));
    let names = names(&stack.frames);
    assert!(
        names[0].ends_with("parser::tokens::inlined_token_buffer"),
        "the inlined frame has its path: {names:?}"
    );
    assert!(names[1].ends_with("parser::tokens::tokenize"), "{names:?}");
    drop(kept);
}
