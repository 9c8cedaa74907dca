//! A large exact-mode profile over HTTP: 200,000 distinct stacks at
//! `MEMPROF_RATE=1`. The default `/heap` answers are bounded (the largest
//! stacks and one `[other N stacks]` remainder carrying the rest, so the
//! totals stay exact); `limit=all` streams every stack, and `go tool pprof`
//! reads the whole profile.
//!
//! The rate and the table caps are read before the first allocation, so
//! the profile is made in a child: this test binary again, with `CHILD` set.
//! The endpoint's threads and the child's requesting thread are not
//! sampled, so every answer reads the same profile.

use std::io::{BufRead, BufReader, Read};
use std::process::Command;

use memprof::http::{serve_with, EndpointConfig};
use memprof_dev::{agent, client, distinct_stacks, get};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const CHILD: &str = "MEMPROF_HEAP_SCALE_TEST_CHILD";
const TEST: &str = "large_profiles_are_bounded_by_default_and_complete_on_request";
/// Distinct stacks the child allocates from, one live 16-byte block each.
const STACKS: u32 = 200_000;
/// Levels of the call tree: 2^18 paths, more than `STACKS`.
const DEPTH: u32 = 18;
/// The stacks a view shows by default (besides the remainder).
const DEFAULT_LIMIT: usize = 1000;

/// A folded line's key and value.
fn folded_line(line: &str) -> (String, u64) {
    let (key, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("not a folded line: {line:?}"));
    (key.to_string(), value.parse().unwrap())
}

/// The `N` of an `[other N stacks]` remainder frame.
fn others(name: &str) -> Option<usize> {
    name.strip_prefix("[other ")?
        .strip_suffix(" stacks]")?
        .parse()
        .ok()
}

/// `GET url`, answered 200: its headers, and its body read as a stream.
fn open(url: &str) -> (Vec<(String, String)>, impl Read) {
    let response = agent().get(url).call().unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    (headers, body)
}

fn child() {
    let mut kept = Vec::with_capacity(STACKS as usize);
    for path in 0..STACKS {
        distinct_stacks::call_from(path, DEPTH, &mut || kept.push(vec![path as u8; 16]));
    }
    let server = serve_with("127.0.0.1:0", EndpointConfig::default()).unwrap();
    // This thread's requests leave the profile as it is.
    memprof::set_thread_rate(Some(0));
    let url = format!("{}/heap", server.url());

    // Folded, bounded by default: the largest stacks and the remainder.
    let folded =
        |url: &str| -> Vec<(String, u64)> { get(url).text().lines().map(folded_line).collect() };
    let bounded = folded(&format!("{url}?format=folded"));
    assert_eq!(bounded.len(), DEFAULT_LIMIT + 1, "{:?}", &bounded[..3]);
    let (last, _) = &bounded[DEFAULT_LIMIT];
    let rest = others(last).unwrap_or_else(|| panic!("no remainder line: {last:?}"));
    assert!(rest >= STACKS as usize - DEFAULT_LIMIT, "{last}");

    // A kept snapshot, so the bounded and the full views read the same
    // stacks (the endpoint's new threads allocate a little before they
    // stop sampling).
    let created = memprof_dev::post(&format!("{}/snapshots", server.url())).json();
    let kept_url = format!("{}/snapshots/{}", server.url(), created["id"]);
    let bounded = folded(&format!("{kept_url}?format=folded"));
    assert_eq!(bounded.len(), DEFAULT_LIMIT + 1);
    let bounded_sum: u64 = bounded.iter().map(|(_, v)| v).sum();

    // Every stack, streamed: the sum is the bounded view's, and every one
    // of the child's stacks is there with its 16 bytes.
    let (headers, body) = open(&format!("{kept_url}?format=folded&limit=all"));
    assert!(
        !headers.iter().any(|(n, _)| n == "content-length"),
        "the full export is streamed: {headers:?}"
    );
    let (mut lines, mut sum, mut ours) = (0usize, 0u64, 0u32);
    for line in BufReader::new(body).lines() {
        let (key, value) = folded_line(&line.unwrap());
        assert!(others(&key).is_none(), "{key}");
        lines += 1;
        sum += value;
        if key.contains("distinct_stacks::") {
            assert_eq!(value, 16, "{key}");
            ours += 1;
        }
    }
    assert_eq!(ours, STACKS);
    assert!(lines > STACKS as usize);
    assert_eq!(sum, bounded_sum, "the remainder carries the rest exactly");

    // JSON, bounded by default: the stacks and the remainder add up to the
    // totals.
    let json = get(&format!("{kept_url}?kind=alloc_space")).json();
    let stacks = json["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), DEFAULT_LIMIT + 1);
    let remainder = stacks[DEFAULT_LIMIT]["frames"][0]["function"]
        .as_str()
        .unwrap();
    assert!(others(remainder).is_some(), "{remainder}");
    let total = |field: &str| -> f64 { stacks.iter().map(|s| s[field].as_f64().unwrap()).sum() };
    for field in [
        "inuse_bytes",
        "inuse_objects",
        "alloc_bytes",
        "alloc_objects",
    ] {
        assert_eq!(
            total(field),
            json["totals"][field].as_f64().unwrap(),
            "{field}"
        );
    }

    // pprof, bounded by default and complete with limit=all.
    let read = |body: &[u8]| memprof::export::pprof::read_pprof(body).unwrap();
    let inuse = |p: &memprof::export::pprof::proto::Profile| -> i64 {
        p.sample.iter().map(|s| s.value[3]).sum()
    };
    let read_all = |url: &str| {
        let mut whole = Vec::new();
        open(url).1.read_to_end(&mut whole).unwrap();
        whole
    };
    assert_eq!(read(&get(&url).body).sample.len(), DEFAULT_LIMIT + 1);
    let bounded = read(&get(&format!("{kept_url}?format=pprof")).body);
    assert_eq!(bounded.sample.len(), DEFAULT_LIMIT + 1);
    let whole = read_all(&format!("{kept_url}?format=pprof&limit=all"));
    let full = read(&whole);
    assert!(full.sample.len() > STACKS as usize, "{}", full.sample.len());
    assert_eq!(inuse(&full), inuse(&bounded));
    assert_eq!(inuse(&full) as u64, sum);
    if let Some(go) = client("go") {
        let dir = std::env::temp_dir().join(format!("memprof-heap-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("heap.pb.gz");
        std::fs::write(&file, &whole).unwrap();
        let top = memprof_dev::go_pprof_top(&go, &dir, file.to_str().unwrap(), &[]);
        assert!(top.contains("distinct_stacks"), "{top}");
        std::fs::remove_dir_all(&dir).ok();
    }
    drop(kept);
}

#[test]
fn large_profiles_are_bounded_by_default_and_complete_on_request() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("MEMPROF_RATE", "1")
        .env("MEMPROF_MAX_STACKS", "1000000")
        .env("MEMPROF_MAX_SAMPLES", "1000000")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn bad_limits_are_refused_naming_the_parameter() {
    let server = serve_with("127.0.0.1:0", EndpointConfig::default()).unwrap();
    let cases = [
        ("/heap?limit=-1", "limit"),
        ("/heap?limit=ten", "limit"),
        ("/heap?format=folded&limit=1.5", "limit"),
        ("/heap?min_share=2", "min_share"),
        ("/heap?format=json&min_share=-0.1", "min_share"),
        ("/heap?min_share=NaN", "min_share"),
        ("/heap?min_share=1%25", "min_share"),
        ("/flamegraph?limit=all%20", "limit"),
    ];
    for (path, parameter) in cases {
        let reply = get(&format!("{}{path}", server.url()));
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert_eq!(reply.json()["parameter"], parameter, "{path}");
    }
    for path in [
        "/heap?limit=0",
        "/heap?format=folded&limit=all",
        "/heap?format=json&limit=3&min_share=0.5",
        "/flamegraph?limit=10&min_share=0",
    ] {
        let reply = get(&format!("{}{path}", server.url()));
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
}
