//! Scopes attribute allocations to components, nest, and show as frames.

use memprof::Kind;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

#[memprof::scope]
fn scoped_parser(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![0u8; 100]).collect()
}

#[memprof::scope("request")]
fn scoped_request() -> Vec<Vec<u8>> {
    let kept = scoped_parser(10);
    let temporary = vec![0u8; 5000];
    drop(temporary);
    kept
}

#[test]
fn scopes_count_allocations_nest_and_show_in_stacks() {
    memprof::set_thread_rate(Some(1));
    let kept = scoped_request();
    let outer_only = memprof::scope("plain-closure", || vec![1u8; 300]);
    let snapshot = memprof::snapshot();
    memprof::set_thread_rate(None);
    assert_eq!(kept.len(), 10);

    let scopes = memprof::scopes();
    let request = scopes
        .iter()
        .find(|s| s.path == "request")
        .expect("request scope");
    let parser = scopes
        .iter()
        .find(|s| s.path == "request/scoped_parser")
        .expect("nested scope path");
    // The parser: 10 blocks of 100 B and its vector of 10 Vec headers (240 B).
    assert_eq!(parser.alloc_bytes, 1000.0 + 240.0);
    assert_eq!(parser.net_bytes, 1240.0, "nothing freed yet");
    // The request includes the parser and its own 5000 B temporary.
    assert_eq!(request.alloc_bytes, 1240.0 + 5000.0);
    assert_eq!(request.freed_bytes, 5000.0);
    assert_eq!(request.net_bytes, 1240.0);
    assert!(
        request.peak_bytes >= 6240.0,
        "peak saw the temporary: {}",
        request.peak_bytes
    );
    assert_eq!(request.entered, 1);
    let closure = scopes.iter().find(|s| s.path == "plain-closure").unwrap();
    assert_eq!(closure.alloc_bytes, 300.0);

    // The scope is a frame at the root of the stacks allocated inside it
    // (a call site may be split over several stacks by loop unrolling).
    let parser_bytes: f64 = snapshot
        .stacks
        .iter()
        .filter(|s| {
            s.folded_key()
                .starts_with("[scope request];[scope scoped_parser];")
        })
        .map(|s| s.value(Kind::InuseSpace))
        .sum();
    assert_eq!(
        parser_bytes, 1240.0,
        "the parser's stacks carry both scopes as root frames"
    );
    drop((outer_only, kept));
}
