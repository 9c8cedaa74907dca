//! A full scope registry: a new runtime name counts towards the enclosing
//! scope, each such entry is counted, known names still enter their own
//! scope, and the name arena stays within its size.

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn scope(path: &str) -> memprof::ScopeStats {
    memprof::scopes()
        .into_iter()
        .find(|s| s.path == path)
        .unwrap()
}

#[test]
fn past_the_registry_new_names_count_in_the_parent_and_are_counted() {
    let outer = memprof::enter_scope("full-outer");
    let max = memprof::registry_stats().max_scopes;
    let mut i = 0;
    while memprof::registry_stats().scopes < max {
        drop(memprof::enter_scope_named(&format!("full-{i}")));
        i += 1;
    }
    let before = memprof::registry_stats();
    assert_eq!(before.scopes, max);
    assert_eq!(before.entries_not_registered, 0);

    let previous = memprof::set_thread_rate(Some(1));
    let kept = {
        let _new = memprof::enter_scope_named("full-one-too-many");
        std::hint::black_box(vec![0u8; 5000])
    };
    let known = {
        let _known = memprof::enter_scope_named("full-0");
        std::hint::black_box(vec![0u8; 300])
    };
    memprof::set_thread_rate(previous);
    drop(outer);

    let after = memprof::registry_stats();
    assert_eq!(after.scopes, max);
    assert_eq!(after.entries_not_registered, 1);
    assert!(!memprof::scopes()
        .iter()
        .any(|s| s.path.contains("one-too-many")));
    assert_eq!(
        scope("full-outer").alloc_bytes,
        5300.0,
        "the parent took it"
    );
    assert_eq!(scope("full-outer/full-0").alloc_bytes, 300.0);
    assert!(after.name_arena_bytes <= after.name_arena_capacity_bytes);
    drop((kept, known));
}
