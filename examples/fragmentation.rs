//! Reading fragmentation: jemalloc's allocated vs active vs resident, the
//! worst size classes, what a purge gives back, and what the doctor says.
//!
//! `cargo run --release --example fragmentation`

use memprof::doctor;
use memprof::jemalloc;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

fn print_totals(when: &str) {
    match jemalloc::stats() {
        Ok(stats) => {
            let t = &stats.totals;
            println!(
                "{when:>14}: allocated {:7.1} MiB  active {:7.1} MiB  resident {:7.1} MiB  retained {:7.1} MiB  (active/allocated {:.2})",
                mib(t.allocated_bytes),
                mib(t.active_bytes),
                mib(t.resident_bytes),
                mib(t.retained_bytes),
                stats.ratios.allocator_fragmentation_ratio.unwrap_or(f64::NAN),
            );
        }
        Err(e) => println!("{when:>14}: jemalloc statistics not available: {e}"),
    }
}

// Separate heap blocks are the point: they are what fragments.
#[allow(clippy::vec_box)]
fn main() {
    print_totals("at start");

    // 300,000 blocks of 100 bytes (jemalloc's 112-byte class), then free
    // five of every six: each slab keeps one live block in six.
    let all: Vec<Box<[u8; 100]>> = (0..300_000).map(|i| Box::new([i as u8; 100])).collect();
    print_totals("all allocated");
    let survivors: Vec<Box<[u8; 100]>> = all.into_iter().step_by(6).collect();
    print_totals("5/6 freed");

    if let Ok(stats) = jemalloc::stats() {
        let mut bins = stats.bins.clone();
        bins.sort_by_key(|b| std::cmp::Reverse(b.wasted_bytes));
        println!("\nworst size classes:");
        for bin in bins.iter().take(3) {
            println!(
                "  {:>6} B: {:>8} regions in use, utilisation {:5.1}%, {:7.1} MiB wasted",
                bin.size_bytes,
                bin.curregs,
                100.0 * bin.utilisation.unwrap_or(0.0),
                mib(bin.wasted_bytes)
            );
        }
    }

    // A purge returns dirty pages to the system; it cannot return slabs that
    // still hold a live block, so it does not cure this.
    match jemalloc::purge() {
        Ok(report) => println!(
            "\npurge: resident {:.1} MiB -> {:.1} MiB (released {:.1} MiB)",
            mib(report.resident_before_bytes),
            mib(report.resident_after_bytes),
            report.released_bytes as f64 / (1u64 << 20) as f64
        ),
        Err(e) => println!("\npurge not available: {e}"),
    }
    print_totals("after purge");

    let input = doctor::read_live(
        memprof::host::Pid::Current,
        std::time::Duration::from_millis(200),
    );
    println!("\n{}", doctor::render_text(&doctor::examine(&input)));
    drop(survivors);
}
