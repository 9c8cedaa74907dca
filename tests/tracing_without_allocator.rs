//! A program that uses memprof's tracing layer without `MemProf` as its
//! global allocator is told so, once, on stderr when the layer is built,
//! and `/stats` says so too: its spans would otherwise show zero bytes, a
//! wrong answer that looks like a right one. (This binary keeps the
//! default global allocator on purpose.)

use std::process::Command;

use tracing_subscriber::layer::SubscriberExt;

const CHILD: &str = "MEMPROF_TRACING_WITHOUT_ALLOCATOR_CHILD";

#[test]
fn building_the_layer_says_once_which_line_to_add() {
    if std::env::var_os(CHILD).is_some() {
        for _ in 0..2 {
            let layer = memprof::tracing::MemprofLayer::new().spans(["request"]);
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let _entered = tracing::info_span!("request").entered();
                std::hint::black_box(vec![0u8; 1024]);
            });
        }
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "building_the_layer_says_once_which_line_to_add",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said = stderr.matches("memprof: MemprofLayer turns spans into scopes, but MemProf is not the global allocator").count();
    assert_eq!(said, 1, "said once for two layers: {stderr}");
    assert!(
        stderr.contains("static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();"),
        "{stderr}"
    );
}

#[test]
fn stats_says_memprof_sees_nothing() {
    let _layer = memprof::tracing::MemprofLayer::new();
    let handle = memprof::serve("127.0.0.1:0").unwrap();
    let stats = memprof_dev::get(&format!("{}/stats", handle.url()));
    assert_eq!(stats.status, 200);
    let warning = stats.json()["warning"].as_str().unwrap_or("").to_owned();
    assert!(
        warning.contains("MemProf is not the global allocator"),
        "{}",
        stats.text()
    );
    assert!(
        stats.json()["scope_registry"]["max_scopes"]
            .as_u64()
            .is_some(),
        "{}",
        stats.text()
    );
}
