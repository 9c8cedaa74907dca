//! Every rule, triggered by constructed readings and quiet on healthy ones.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::host::{
    Buddyinfo, CgroupLocation, CgroupMemory, CgroupV1Memory, CgroupV2Memory, CgroupVersion,
    CgroupView, HostView, Limit, Located, Meminfo, MemoryEvents, MemoryStat, OomControl, OomLog,
    Pid, Pressure, ProcStatus, ProcessView, Reading, Thp, VmSysctls, Vmstat,
};

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn status(rss_kib: u64, hwm_kib: u64, anon_kib: u64, swap_kib: u64) -> ProcStatus {
    let file_kib = rss_kib.saturating_sub(anon_kib);
    let text = format!(
        "Name:\tsvc\nUid:\t1000\t1000\t1000\t1000\nVmSize:\t{}\tkB\nVmHWM:\t{hwm_kib} kB\n\
         VmRSS:\t{rss_kib} kB\nRssAnon:\t{anon_kib} kB\nRssFile:\t{file_kib} kB\n\
         RssShmem:\t0 kB\nVmSwap:\t{swap_kib} kB\nThreads:\t8\n",
        rss_kib * 4
    );
    ProcStatus::parse_str(&text).unwrap()
}

fn meminfo(extra: &[(&str, u64)]) -> Meminfo {
    let mut fields = vec![
        ("MemTotal", 16 * MIB),
        ("MemFree", 4 * MIB),
        ("MemAvailable", 10 * MIB),
        ("SwapTotal", 2 * MIB),
        ("SwapFree", 2 * MIB),
        ("SReclaimable", 300 * KIB),
        ("SUnreclaim", 200 * KIB),
        ("CommitLimit", 10 * MIB),
        ("Committed_AS", 6 * MIB),
        ("AnonHugePages", 0),
        ("Hugepagesize", 2048),
    ];
    for (key, value) in extra {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = *value,
            None => fields.push((key, *value)),
        }
    }
    let text: String = fields
        .iter()
        .map(|(k, v)| format!("{k}: {v} kB\n"))
        .collect();
    Meminfo::parse_str(&text).unwrap()
}

const HEALTHY_BUDDY: &str = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3\n\
Node 0, zone    DMA32      1      2      4      2      5      4      3      3      4      2    752\n\
Node 0, zone   Normal  28403  25019  15141   5704   3402   1477    468    209     95     44     52\n";

/// Lots free, but nothing at order 9 or above in Normal.
const SHATTERED_BUDDY: &str = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3\n\
Node 0, zone    DMA32      1      2      4      2      5      4      3      3      4      2    752\n\
Node 0, zone   Normal 900000 400000 100000  20000   3000    500     80     10      2      0      0\n";

fn pressure(some10: f64, some60: f64, full10: f64, full60: f64) -> Pressure {
    Pressure::parse_str(&format!(
        "some avg10={some10:.2} avg60={some60:.2} avg300=0.00 total=1\n\
         full avg10={full10:.2} avg60={full60:.2} avg300=0.00 total=1\n"
    ))
    .unwrap()
}

fn host() -> HostView {
    HostView {
        page_size_bytes: 4096,
        meminfo: Reading::Available(meminfo(&[])),
        buddyinfo: Reading::Available(Buddyinfo::parse_str(HEALTHY_BUDDY, 4096).unwrap()),
        vmstat: Reading::Available(vmstat(0, 0, 0, 0, 0, 0)),
        pressure: Reading::Available(pressure(0.0, 0.0, 0.0, 0.0)),
        sysctls: VmSysctls {
            min_free_bytes: Reading::Available(67_584 * KIB),
            overcommit_memory: Reading::Available(0),
            overcommit_ratio: Reading::Available(50),
            swappiness: Reading::Available(60),
            watermark_scale_factor: Reading::Available(10),
        },
        thp: Thp {
            enabled: Reading::Available("madvise".to_owned()),
            defrag: Reading::Available("madvise".to_owned()),
        },
        oom_log: Reading::Available(OomLog::default()),
    }
}

fn vmstat(pswpin: u64, pswpout: u64, allocstall: u64, scan: u64, steal: u64, oom: u64) -> Vmstat {
    Vmstat::parse_str(&format!(
        "pswpin {pswpin}\npswpout {pswpout}\nallocstall_normal {allocstall}\n\
         pgscan_kswapd {scan}\npgsteal_kswapd {steal}\noom_kill {oom}\npgmajfault 0\n"
    ))
    .unwrap()
}

fn process(status: ProcStatus) -> ProcessView {
    ProcessView {
        pid: Pid::Current,
        status: Reading::Available(status),
        smaps_rollup: Reading::unavailable("not read"),
        statm: Reading::unavailable("not read"),
    }
}

fn location(version: CgroupVersion) -> CgroupLocation {
    CgroupLocation {
        version,
        path: "/system.slice/app.service".to_owned(),
        dir: PathBuf::from("/sys/fs/cgroup/system.slice/app.service"),
        located: Located::Mountinfo,
    }
}

fn stat(inactive_file: u64) -> MemoryStat {
    MemoryStat::parse(format!("anon 1\ninactive_file {inactive_file}\n").as_bytes()).unwrap()
}

fn v2(current: u64, max: Limit, inactive_file: u64, events: &str) -> CgroupView {
    CgroupView {
        location: location(CgroupVersion::V2),
        memory: CgroupMemory::V2(CgroupV2Memory {
            current_bytes: Reading::Available(current),
            max_bytes: Reading::Available(max),
            high_bytes: Reading::Available(Limit::Unlimited),
            low_bytes: Reading::Available(0),
            peak_bytes: Reading::Available(current),
            events: Reading::Available(MemoryEvents::parse(events.as_bytes()).unwrap()),
            stat: Reading::Available(stat(inactive_file)),
            pressure: Reading::Available(pressure(0.0, 0.0, 0.0, 0.0)),
            swap_current_bytes: Reading::Available(0),
            swap_max_bytes: Reading::Available(Limit::Unlimited),
            working_set_bytes: Reading::Available(current.saturating_sub(inactive_file)),
        }),
    }
}

fn v1(usage: u64, limit: Limit, oom_control: &str) -> CgroupView {
    CgroupView {
        location: location(CgroupVersion::V1),
        memory: CgroupMemory::V1(CgroupV1Memory {
            limit_bytes: Reading::Available(limit),
            soft_limit_bytes: Reading::Available(Limit::Unlimited),
            usage_bytes: Reading::Available(usage),
            max_usage_bytes: Reading::Available(usage),
            failcnt: Reading::Available(0),
            memsw_limit_bytes: Reading::unavailable("no swap accounting"),
            memsw_usage_bytes: Reading::unavailable("no swap accounting"),
            oom_control: Reading::Available(OomControl::parse(oom_control.as_bytes()).unwrap()),
            stat: Reading::Available(stat(0)),
            working_set_bytes: Reading::Available(usage),
        }),
    }
}

const QUIET_EVENTS: &str = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n";

/// A healthy process on a healthy host in a roomy cgroup, two readings one
/// minute apart with nothing moving.
fn healthy() -> DoctorInput {
    let t0 = Instant::now();
    let s = status(180 * 1024, 200 * 1024, 160 * 1024, 0);
    let mut reading = TimedReading::new(t0)
        .with_status(Some(s.clone()))
        .with_meminfo(Some(meminfo(&[])))
        .with_vmstat(Some(vmstat(100, 100, 5, 1000, 900, 0)))
        .with_allocator(Some(150 * MIB), Some(170 * MIB));
    reading.page_size_bytes = 4096;
    let later = reading.clone().shifted(Duration::from_secs(60));
    let input = DoctorInput::new()
        .with_process(Some(process(s)))
        .with_host(Some(host()))
        .with_cgroup(Some(Reading::Available(v2(
            300 * MIB,
            Limit::Bytes(GIB),
            50 * MIB,
            QUIET_EVENTS,
        ))))
        .with_series(vec![reading, later]);
    #[cfg(feature = "jemalloc")]
    let input = input.with_jemalloc(Some(jemalloc(150 * MIB, 160 * MIB, 170 * MIB)));
    input
}

#[cfg(feature = "jemalloc")]
fn jemalloc(allocated: u64, active: u64, resident: u64) -> crate::jemalloc::JemallocStats {
    use crate::jemalloc::{BinStats, JemallocStats, PageCounts, Ratios, Settings, Totals};
    let totals = Totals {
        allocated_bytes: allocated,
        active_bytes: active,
        resident_bytes: resident,
        mapped_bytes: resident,
        metadata_bytes: 4 * MIB,
        retained_bytes: 64 * MIB,
    };
    // 112-byte class, 256 slots per slab: utilisation 1/6 in 1000 slabs;
    // 48-byte class nearly full.
    let bins = vec![
        BinStats::new(5, 48, 256, 12288, 2550, 10),
        BinStats::new(7, 112, 256, 28672, 256 * 1000 / 6, 1000),
    ];
    let waste = crate::jemalloc::small_bin_waste_bytes(&bins);
    JemallocStats {
        epoch: 1,
        refreshed_at_unix_ms: 0,
        ratios: Ratios::compute(&totals, waste, Some(200 * MIB)),
        totals,
        pages: PageCounts {
            page_bytes: 4096,
            dirty_pages: resident.saturating_sub(active) / 4096,
            dirty_bytes: resident.saturating_sub(active),
            muzzy_pages: 0,
            muzzy_bytes: 0,
        },
        bins,
        large: Vec::new(),
        settings: Settings {
            opt_dirty_decay_ms: 10_000,
            opt_muzzy_decay_ms: 0,
            opt_background_thread: false,
            background_thread: false,
            opt_narenas: 8,
            narenas: 8,
        },
    }
}

fn rules_found(input: &DoctorInput) -> Vec<&'static str> {
    examine(input).iter().map(|f| f.rule).collect()
}

fn only(input: &DoctorInput, rule: &str) -> Finding {
    let findings = examine(input);
    let found: Vec<_> = findings.iter().filter(|f| f.rule == rule).collect();
    assert_eq!(found.len(), 1, "{rule} not found in {findings:#?}");
    found[0].clone()
}

/// Replaces the last reading of the series with `f(last)`.
fn last_reading(input: &mut DoctorInput, f: impl FnOnce(TimedReading) -> TimedReading) {
    let last = input.series.pop().unwrap();
    input.series.push(f(last));
}

#[test]
fn healthy_readings_find_nothing() {
    let input = healthy();
    assert_eq!(rules_found(&input), Vec::<&str>::new());
    assert!(render_text(&[]).contains("No findings"));
}

#[test]
fn empty_input_finds_nothing() {
    assert!(examine(&DoctorInput::new()).is_empty());
}

#[test]
fn rule_ids_are_unique() {
    let mut ids: Vec<_> = rules::all().iter().map(|r| r.id()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(n, 18);
}

#[cfg(feature = "jemalloc")]
#[test]
fn fragmentation_names_the_worst_bin() {
    let mut input = healthy();
    // Redis: ratio > 1.1 and > 10 MiB.
    input.jemalloc = Some(jemalloc(60 * MIB, 100 * MIB, 101 * MIB));
    let f = only(&input, "allocator-fragmentation");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.meaning.contains("112-byte class"), "{}", f.meaning);
    let util = f
        .evidence("bin_112_utilisation")
        .unwrap()
        .as_number()
        .unwrap();
    assert!((util - 16.6).abs() < 0.2, "{util}");
    assert!(f.evidence("bin_112_wasted").is_some());
    // Just under either threshold: quiet.
    input.jemalloc = Some(jemalloc(100 * MIB, 109 * MIB, 110 * MIB));
    assert!(!rules_found(&input).contains(&"allocator-fragmentation"));
    input.jemalloc = Some(jemalloc(5 * MIB, 14 * MIB, 15 * MIB));
    assert!(!rules_found(&input).contains(&"allocator-fragmentation"));
}

#[cfg(feature = "jemalloc")]
#[test]
fn dirty_pages_mention_decay_and_purge() {
    let mut input = healthy();
    input.jemalloc = Some(jemalloc(150 * MIB, 160 * MIB, 190 * MIB));
    let f = only(&input, "allocator-dirty-pages");
    assert_eq!(f.severity, Severity::Warning, "no background thread");
    assert!(f.advice.contains("/allocator/purge"));
    assert!(f.advice.contains("background_thread:true"));
    assert!(f.evidence("opt.dirty_decay_ms").is_some());
    let mut stats = jemalloc(150 * MIB, 160 * MIB, 190 * MIB);
    stats.settings.background_thread = true;
    input.jemalloc = Some(stats);
    assert_eq!(
        only(&input, "allocator-dirty-pages").severity,
        Severity::Info
    );
}

#[cfg(feature = "jemalloc")]
#[test]
fn rss_outside_the_allocator() {
    let mut input = healthy();
    // 400 MiB RSS, 380 MiB anonymous, jemalloc resident 170 MiB.
    input.process = Some(process(status(400 * 1024, 410 * 1024, 380 * 1024, 0)));
    let f = only(&input, "rss-outside-allocator");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.evidence("rss_overhead_bytes").unwrap().as_number(),
        Some(230.0 * MIB as f64)
    );
    // The same excess, file-backed: information.
    input.process = Some(process(status(400 * 1024, 410 * 1024, 170 * 1024, 0)));
    assert_eq!(
        only(&input, "rss-outside-allocator").severity,
        Severity::Info
    );
}

#[cfg(feature = "jemalloc")]
#[test]
fn retained_address_space_is_information() {
    let mut input = healthy();
    let mut stats = jemalloc(150 * MIB, 160 * MIB, 170 * MIB);
    stats.totals.retained_bytes = 8 * GIB;
    input.jemalloc = Some(stats);
    let f = only(&input, "allocator-retained");
    assert_eq!(f.severity, Severity::Info);
    assert!(f.meaning.contains("harmless"));
}

#[test]
fn post_peak_returned_and_retained() {
    let mut input = healthy();
    input.process = Some(process(status(200 * 1024, 900 * 1024, 180 * 1024, 0)));
    let f = only(&input, "post-peak-retention");
    assert_eq!(f.severity, Severity::Info);
    assert!(f.title.contains("given back"));
    // RSS at its peak, heap a quarter of it.
    input.process = Some(process(status(800 * 1024, 820 * 1024, 780 * 1024, 0)));
    #[cfg(feature = "jemalloc")]
    {
        input.jemalloc = None;
    }
    last_reading(&mut input, |r| r.with_allocator(Some(200 * MIB), None));
    let f = only(&input, "post-peak-retention");
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn swap_rates_over_the_series() {
    let mut input = healthy();
    // 60 s apart: 60_000 pages in (4 MiB/s of 4 KiB pages) is critical.
    last_reading(&mut input, |r| {
        r.with_vmstat(Some(vmstat(100 + 60 * 1024, 100, 5, 1000, 900, 0)))
    });
    let f = only(&input, "swap-activity");
    assert_eq!(f.severity, Severity::Critical);
    let si = f.evidence("si").unwrap().as_number().unwrap();
    assert!((si - 4.0 * MIB as f64).abs() < 1.0, "{si}");
    // 5 MiB out in a minute: a warning.
    last_reading(&mut input, |r| {
        r.with_vmstat(Some(vmstat(100, 100 + 4 * 1280, 5, 1000, 900, 0)))
    });
    assert_eq!(only(&input, "swap-activity").severity, Severity::Warning);
    // No activity, but the process has 100 MiB in swap.
    let mut input = healthy();
    input.process = Some(process(status(
        200 * 1024,
        210 * 1024,
        180 * 1024,
        100 * 1024,
    )));
    assert_eq!(only(&input, "swap-activity").severity, Severity::Info);
}

#[test]
fn pressure_and_reclaim() {
    let mut input = healthy();
    let mut h = host();
    h.pressure = Reading::Available(pressure(12.0, 3.0, 0.5, 0.1));
    input.host = Some(h.clone());
    assert_eq!(only(&input, "reclaim-pressure").severity, Severity::Warning);
    h.pressure = Reading::Available(pressure(40.0, 30.0, 25.0, 12.0));
    input.host = Some(h);
    assert_eq!(
        only(&input, "reclaim-pressure").severity,
        Severity::Critical
    );
    // Quiet PSI, but 2 direct reclaim stalls/s.
    let mut input = healthy();
    last_reading(&mut input, |r| {
        r.with_vmstat(Some(vmstat(100, 100, 125, 1000, 900, 0)))
    });
    let f = only(&input, "reclaim-pressure");
    assert!(f.meaning.contains("direct reclaim"), "{}", f.meaning);
    // 10% efficiency at 10k pages/s scanned.
    let mut input = healthy();
    last_reading(&mut input, |r| {
        r.with_vmstat(Some(vmstat(100, 100, 5, 601_000, 60_900, 0)))
    });
    let f = only(&input, "reclaim-pressure");
    assert!(f.meaning.contains("scans"), "{}", f.meaning);
}

#[test]
fn high_order_depletion_in_normal() {
    let mut input = healthy();
    let mut h = host();
    h.buddyinfo = Reading::Available(Buddyinfo::parse_str(SHATTERED_BUDDY, 4096).unwrap());
    input.host = Some(h);
    let f = only(&input, "high-order-depletion");
    assert_eq!(f.severity, Severity::Warning);
    let index = f
        .evidence("node0_Normal_unusable_index_order9")
        .and_then(Evidence::as_number)
        .unwrap();
    assert!(index > 0.9, "{index}");
}

#[test]
fn slab_large_or_growing() {
    let mut input = healthy();
    let mut h = host();
    h.meminfo = Reading::Available(meminfo(&[("SUnreclaim", 2 * MIB)]));
    input.host = Some(h);
    assert_eq!(only(&input, "kernel-slab").severity, Severity::Warning);
    // Small, but grew 100 MiB in the minute.
    let mut input = healthy();
    last_reading(&mut input, |r| {
        r.with_meminfo(Some(meminfo(&[("SUnreclaim", 300 * KIB)])))
    });
    let f = only(&input, "kernel-slab");
    assert!(f.title.contains("grew"), "{}", f.title);
}

#[test]
fn anonymous_growth_outside_the_heap() {
    let mut input = healthy();
    last_reading(&mut input, |r| {
        r.with_status(Some(status(300 * 1024, 310 * 1024, 280 * 1024, 0)))
            .with_allocator(Some(151 * MIB), Some(171 * MIB))
    });
    let f = only(&input, "anon-growth-outside-heap");
    assert_eq!(f.severity, Severity::Warning);
    // The same growth, made by the heap: quiet.
    last_reading(&mut input, |r| {
        r.with_allocator(Some(250 * MIB), Some(270 * MIB))
    });
    assert!(!rules_found(&input).contains(&"anon-growth-outside-heap"));
}

#[test]
fn cgroup_near_limit_v2_and_v1() {
    let mut input = healthy();
    input.cgroup = Some(Reading::Available(v2(
        950 * MIB,
        Limit::Bytes(GIB),
        10 * MIB,
        QUIET_EVENTS,
    )));
    assert_eq!(
        only(&input, "cgroup-near-limit").severity,
        Severity::Warning
    );
    input.cgroup = Some(Reading::Available(v2(
        1000 * MIB,
        Limit::Bytes(GIB),
        0,
        QUIET_EVENTS,
    )));
    assert_eq!(
        only(&input, "cgroup-near-limit").severity,
        Severity::Critical
    );
    // Full of page cache: information.
    input.cgroup = Some(Reading::Available(v2(
        1000 * MIB,
        Limit::Bytes(GIB),
        600 * MIB,
        QUIET_EVENTS,
    )));
    assert_eq!(only(&input, "cgroup-near-limit").severity, Severity::Info);
    input.cgroup = Some(Reading::Available(v1(
        950 * MIB,
        Limit::Bytes(GIB),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    )));
    assert_eq!(
        only(&input, "cgroup-near-limit").severity,
        Severity::Warning
    );
    input.cgroup = Some(Reading::Available(v2(
        1000 * MIB,
        Limit::Unlimited,
        0,
        QUIET_EVENTS,
    )));
    assert!(!rules_found(&input).contains(&"cgroup-near-limit"));
}

#[test]
fn oom_kills_v2_v1_and_host() {
    let mut input = healthy();
    input.cgroup = Some(Reading::Available(v2(
        300 * MIB,
        Limit::Bytes(GIB),
        0,
        "low 0\nhigh 0\nmax 7\noom 3\noom_kill 3\n",
    )));
    let f = only(&input, "oom-kills");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.title.contains("3 kills"));
    input.cgroup = Some(Reading::Available(v1(
        300 * MIB,
        Limit::Bytes(GIB),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )));
    assert_eq!(only(&input, "oom-kills").severity, Severity::Critical);
    input.cgroup = Some(Reading::Available(v2(
        300 * MIB,
        Limit::Bytes(GIB),
        0,
        "low 0\nhigh 0\nmax 7\noom 0\noom_kill 0\n",
    )));
    assert_eq!(only(&input, "oom-kills").severity, Severity::Warning);
    let mut input = healthy();
    last_reading(&mut input, |r| {
        r.with_vmstat(Some(vmstat(100, 100, 5, 1000, 900, 1)))
    });
    assert_eq!(only(&input, "oom-kills").severity, Severity::Critical);
}

#[test]
fn min_free_kbytes_against_the_kernel_default() {
    // 16 GiB: sqrt(16777216 * 16) = 16384 KiB.
    assert_eq!(rules::default_min_free_kib(16 * MIB), 16_384);
    assert_eq!(rules::default_min_free_kib(1), 128);
    assert_eq!(rules::default_min_free_kib(u64::MAX), 262_144);
    let mut input = healthy();
    let mut h = host();
    h.sysctls.min_free_bytes = Reading::Available(4096 * KIB);
    input.host = Some(h.clone());
    let f = only(&input, "min-free-kbytes");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.evidence("kernel_default").and_then(Evidence::as_number),
        Some((16_384 * KIB) as f64)
    );
    h.sysctls.min_free_bytes = Reading::Available(GIB);
    input.host = Some(h);
    assert_eq!(only(&input, "min-free-kbytes").severity, Severity::Info);
}

#[test]
fn thp_always_with_defrag_always() {
    let mut input = healthy();
    let mut h = host();
    h.thp.enabled = Reading::Available("always".to_owned());
    h.thp.defrag = Reading::Available("always".to_owned());
    input.host = Some(h.clone());
    assert_eq!(only(&input, "thp-policy").severity, Severity::Warning);
    // always + madvise defrag, with jemalloc: information.
    h.thp.defrag = Reading::Available("madvise".to_owned());
    input.host = Some(h);
    let f = only(&input, "thp-policy");
    assert_eq!(f.severity, Severity::Info);
    assert!(f.advice.contains("thp:never"));
}

#[test]
fn overcommit_strict_and_always() {
    let mut input = healthy();
    let mut h = host();
    h.sysctls.overcommit_memory = Reading::Available(2);
    h.meminfo = Reading::Available(meminfo(&[("Committed_AS", 9_500 * KIB)]));
    input.host = Some(h.clone());
    // 9500 of 10240 KiB... in MiB: 9.28 of 10 = 92.8 %.
    assert_eq!(only(&input, "overcommit").severity, Severity::Warning);
    h.meminfo = Reading::Available(meminfo(&[("Committed_AS", 6 * MIB)]));
    input.host = Some(h.clone());
    assert!(!rules_found(&input).contains(&"overcommit"));
    h.sysctls.overcommit_memory = Reading::Available(1);
    input.host = Some(h.clone());
    assert_eq!(only(&input, "overcommit").severity, Severity::Info);
    h.meminfo = Reading::Available(meminfo(&[("Committed_AS", 40 * MIB)]));
    input.host = Some(h);
    assert_eq!(only(&input, "overcommit").severity, Severity::Warning);
}

#[test]
fn findings_sort_by_severity_and_render() {
    let mut input = healthy();
    let mut h = host();
    h.thp.enabled = Reading::Available("always".to_owned());
    h.thp.defrag = Reading::Available("always".to_owned());
    input.host = Some(h);
    input.process = Some(process(status(200 * 1024, 900 * 1024, 180 * 1024, 0)));
    input.cgroup = Some(Reading::Available(v2(
        300 * MIB,
        Limit::Bytes(GIB),
        0,
        "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n",
    )));
    let findings = examine(&input);
    let severities: Vec<_> = findings.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(severities, sorted);
    assert_eq!(findings[0].rule, "oom-kills");
    let text = render_text(&findings);
    assert!(text.starts_with(&format!("{} findings: 1 critical", findings.len())));
    assert!(text.contains("CRITICAL  OOM killer ran"));
    assert!(
        text.lines()
            .filter(|l| l.starts_with("  "))
            .all(|l| l.len() <= 100 || !l.trim().contains(' ')),
        "{text}"
    );
    let json = serde_json::to_value(&findings).unwrap();
    assert_eq!(json[0]["severity"], "critical");
    assert_eq!(json[0]["rule"], "oom-kills");
    assert!(json[0]["evidence"][0]["unit"].is_string());
}

#[test]
fn live_readings_of_this_process_do_not_panic() {
    let input = read_live(Pid::Current, Duration::from_millis(50));
    assert_eq!(input.series.len(), 2);
    assert!(input.host.is_some());
    let findings = examine(&input);
    let _ = render_text(&findings);
    let host_only = read_live_with(&LiveOptions::default().pid(None).interval(Duration::ZERO));
    assert!(host_only.process.is_none());
    assert_eq!(host_only.series.len(), 1);
}

/// `healthy()` with its series replaced by readings every 5 s for a
/// minute whose jemalloc `allocated` is `heap(seconds)`.
fn with_heap(heap: impl Fn(f64) -> f64) -> DoctorInput {
    let mut input = healthy();
    let first = input.series[0].clone();
    input.series = (0..13)
        .map(|i| {
            let at = 5.0 * i as f64;
            first
                .clone()
                .shifted(Duration::from_secs_f64(at))
                .with_allocator(Some(heap(at) as u64), Some(170 * MIB))
        })
        .collect();
    input
}

fn leak_report(site: &str, growth_bytes_per_second: f64) -> crate::profile::LeakReport {
    crate::profile::LeakReport {
        generated_at_unix_ms: 0,
        min_age_seconds: 10.0,
        history_points: 12,
        live_samples: 100,
        candidates: vec![crate::profile::LeakCandidate {
            rank: 1,
            key: format!("main;{site}"),
            site: format!("{site} (svc.rs:148) <- handle"),
            frames: Vec::new(),
            scope: None,
            inuse_bytes: 24.0 * MIB as f64,
            inuse_objects: 6000.0,
            old_bytes: 20.0 * MIB as f64,
            old_objects: 5000.0,
            survival_ratio: 1.0,
            oldest_age_seconds: 120.0,
            median_age_seconds: 60.0,
            inuse_error: Default::default(),
            growth_bytes_per_second,
            growth_bytes_per_second_ci95: growth_bytes_per_second / 10.0,
            growth_r_squared: 0.97,
            growth_span_seconds: 60.0,
            growth_source: crate::profile::leaks::GrowthSource::History,
            summary: String::new(),
        }],
        outside_heap: None,
    }
}

#[test]
fn a_steadily_growing_heap_is_a_warning_with_its_rate() {
    // 9.4 MiB a minute, with a little load noise on top.
    let rate = 9.4 * MIB as f64 / 60.0;
    let input = with_heap(|t| {
        150.0 * MIB as f64
            + rate * t
            + if (t as u64 / 5).is_multiple_of(2) {
                0.0
            } else {
                64.0 * 1024.0
            }
    });
    let f = only(&input, "heap-growth");
    assert_eq!(f.severity, Severity::Warning);
    let seen = f.evidence("growth_rate").unwrap().as_number().unwrap();
    assert!(
        (seen / (rate * 60.0) - 1.0).abs() < 0.02,
        "{seen} B/min for {} B/min",
        rate * 60.0
    );
    assert!(f.evidence("r_squared").unwrap().as_number().unwrap() > 0.99);
    assert!(f.title.contains("grows 9.40 MiB/min"), "{}", f.title);
    assert!(f.advice.contains("/leaks"), "{}", f.advice);

    // With candidates, the finding names the fastest-growing site.
    let input = input.with_leaks(Some(leak_report("remember_session", rate)));
    let f = only(&input, "heap-growth");
    assert!(
        f.meaning.contains("remember_session (svc.rs:148)"),
        "{}",
        f.meaning
    );
    assert_eq!(
        f.evidence("top_site").unwrap().value,
        Value::Text("remember_session (svc.rs:148) <- handle".to_owned())
    );
}

#[test]
fn a_bounded_cache_and_a_warm_up_are_not_growth() {
    // A cache that fills and evicts: a sawtooth of 3 MiB.
    let input = with_heap(|t| (150.0 + (t % 20.0) / 20.0 * 3.0) * MIB as f64);
    assert!(!rules_found(&input).contains(&"heap-growth"));
    // Warm-up: 10 MiB in the first 20 s, then flat (r² 0.62).
    let input = with_heap(|t| (150.0 + t.min(20.0) / 2.0) * MIB as f64);
    assert!(!rules_found(&input).contains(&"heap-growth"));
    // Growth too small to act on: 256 KiB a minute.
    let input = with_heap(|t| 150.0 * MIB as f64 + t * 256.0 * 1024.0 / 60.0);
    assert!(!rules_found(&input).contains(&"heap-growth"));
}

#[test]
fn growing_stacks_warn_while_the_heap_is_flat() {
    let input = healthy().with_leaks(Some(leak_report(
        "remember_session",
        2.0 * MIB as f64 / 60.0,
    )));
    let f = only(&input, "heap-growth");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.title.contains("1 stack(s) keep growing"), "{}", f.title);
    // A candidate growing slower than 1 MiB/min alone is left to /leaks.
    let input = healthy().with_leaks(Some(leak_report("remember_session", 1024.0)));
    assert!(!rules_found(&input).contains(&"heap-growth"));
}

#[test]
fn two_readings_a_minute_apart_judge_growth_by_their_slope() {
    let mut input = healthy();
    last_reading(&mut input, |r| {
        r.with_allocator(Some(170 * MIB), Some(190 * MIB))
    });
    let f = only(&input, "heap-growth");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.evidence("r_squared").is_none(), "no fit from two points");
}

#[test]
fn a_short_window_says_growth_was_not_judged() {
    // The CLI's default: two readings a few seconds apart, of another
    // process (no jemalloc figures; its RssAnon is the heap figure).
    let t0 = Instant::now();
    let a = TimedReading::new(t0).with_status(Some(status(180 * 1024, 200 * 1024, 160 * 1024, 0)));
    let b = TimedReading::new(t0)
        .with_status(Some(status(181 * 1024, 200 * 1024, 161 * 1024, 0)))
        .shifted(Duration::from_secs(3));
    let input = DoctorInput::new().with_series(vec![a, b]);
    let f = only(&input, "heap-growth");
    assert_eq!(f.severity, Severity::Info);
    assert!(f.title.contains("not judged"), "{}", f.title);
    assert!(f.advice.contains("--interval 60"), "{}", f.advice);
    assert!(f.evidence("RssAnon_first").is_some());
}
