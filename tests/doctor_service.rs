//! The doctor sees a leak that /leaks sees: a service leaking about 1 MB/s
//! at the default rate gets a heap-growth warning naming the leaking
//! function from GET /doctor, over real HTTP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memprof::history::HistoryConfig;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Leaks 10 KiB a hundred times a second.
#[inline(never)]
fn doctor_sees_this_leak(i: usize) {
    let entry = vec![i as u8; 10 * 1024];
    LEAKED.lock().unwrap().push(entry);
}

#[test]
fn a_leaking_service_gets_a_heap_growth_warning_naming_the_leak() {
    assert_eq!(memprof::rate(), memprof::DEFAULT_RATE, "default settings");
    memprof::history::start(
        HistoryConfig::default()
            .interval(Duration::from_millis(500))
            .window(Duration::from_secs(120)),
    )
    .unwrap();
    let handle = memprof::serve("127.0.0.1:0").unwrap();
    let url = handle.url();

    let stop = Arc::new(AtomicBool::new(false));
    let service = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                doctor_sees_this_leak(i);
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    // Leak candidates need survivors older than 10 s and a few history
    // points of growth; allow a slow CI machine a minute past that.
    let started = Instant::now();
    let mut last = String::new();
    let found = loop {
        std::thread::sleep(Duration::from_secs(2));
        let reply = memprof_dev::get(&format!("{url}/doctor"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        let growth = body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "heap-growth" && f["severity"] == "warning")
            .cloned();
        if let Some(f) =
            growth.filter(|f| f["meaning"].to_string().contains("doctor_sees_this_leak"))
        {
            break Some(f);
        }
        last = body.to_string();
        if started.elapsed() > Duration::from_secs(75) {
            break None;
        }
    };
    stop.store(true, Ordering::Relaxed);
    service.join().unwrap();
    let f = found.unwrap_or_else(|| panic!("no heap-growth warning naming the leak: {last}"));
    eprintln!("found after {:?}: {}", started.elapsed(), f["title"]);
    assert!(f["advice"].to_string().contains("/leaks"), "{f}");

    let text = memprof_dev::get(&format!("{url}/doctor?format=text")).text();
    assert!(!text.contains("No findings"), "{text}");
}
