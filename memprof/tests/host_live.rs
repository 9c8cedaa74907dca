//! The host readers against this machine's real /proc, /sys and cgroup.
//! Only sanity is checked: the figures change from run to run.

use memprof::host::{self, CgroupMemory, CgroupVersion, Pid, Reading, VmstatRates, VmstatSample};

fn value<T>(reading: &Reading<T>) -> &T {
    match reading.value() {
        Some(v) => v,
        None => panic!("unavailable: {:?}", reading.reason()),
    }
}

#[test]
fn this_process_and_this_host() {
    // Touch some memory so RSS is clearly non-zero.
    let ballast = vec![1u8; 8 << 20];
    let all = host::read_all("/");

    let status = value(&all.process.status);
    let rss = status.vm_rss_bytes.unwrap_or(0);
    assert!(rss > 0);
    assert!(status.vm_hwm_bytes.unwrap_or(0) >= rss);
    let rollup = value(&all.process.smaps_rollup);
    let pss = rollup.pss_bytes.unwrap_or(u64::MAX);
    let rollup_rss = rollup.rss_bytes.unwrap_or(0);
    assert!(pss <= rollup_rss, "PSS {pss} > RSS {rollup_rss}");
    assert!(rollup.uss_bytes() <= rollup_rss);
    let statm = value(&all.process.statm);
    assert!(statm.resident_bytes > 0 && statm.size_bytes >= statm.resident_bytes);

    let meminfo = value(&all.host.meminfo);
    let total = meminfo.mem_total_bytes.unwrap_or(0);
    assert!(total > 0);
    assert!(meminfo.mem_free_bytes.unwrap_or(u64::MAX) <= total);
    assert!(meminfo.entries.len() > 20);
    // buddyinfo and MemFree may disagree (per-CPU lists, memory hot-plug):
    // only check that the buddy view is there and bounded by RAM.
    let buddy = value(&all.host.buddyinfo);
    assert!(!buddy.zones.is_empty());
    assert!(buddy.free_pages().saturating_mul(buddy.page_size_bytes) <= total);
    for zone in &buddy.zones {
        for order in &zone.orders {
            assert!(order.unusable_free_index_milli <= 1000);
        }
    }
    assert!(value(&all.host.vmstat).get("pgfault").unwrap_or(0) > 0);
    // PSI and THP may be compiled out; when present they must parse.
    if let Some(p) = all.host.pressure.value() {
        let mut shares = vec![p.some.avg10, p.some.avg60, p.some.avg300];
        if let Some(full) = p.full {
            shares.extend([full.avg10, full.avg60, full.avg300]);
        }
        for share in shares {
            assert!(
                (0.0..=100.0).contains(&share),
                "a share of time is a percentage: {p:?}"
            );
        }
    }
    if let Some(reason) = all.host.sysctls.swappiness.reason() {
        panic!("swappiness unavailable: {reason}");
    }
    drop(ballast);
}

#[test]
fn top_processes_include_this_one() {
    let top = value(&host::read_all("/").top_processes).clone();
    assert!(top.totals.processes >= 1);
    // The listed ones are sorted by PSS.
    assert!(top
        .processes
        .windows(2)
        .all(|w| w[0].pss_bytes >= w[1].pss_bytes));
    let all = host::TopProcesses::read("/", usize::MAX).unwrap();
    let me = std::process::id();
    let row = all.processes.iter().find(|p| p.pid == me);
    let row = row.unwrap_or_else(|| panic!("pid {me} not listed; skipped {:?}", all.skipped));
    assert!(row.pss_bytes > 0 && row.pss_bytes <= row.rss_bytes);
    let exe = std::env::current_exe().unwrap();
    let program = exe.file_name().unwrap().to_str().unwrap();
    assert_eq!(row.name, program, "the whole name, beyond comm's 15 bytes");
    assert_eq!(row.command, None);
    let all = host::TopProcesses::read_with_command_lines("/", usize::MAX).unwrap();
    let row = all.processes.iter().find(|p| p.pid == me).unwrap();
    let command = row.command.as_deref().unwrap_or_default();
    assert!(command.contains("host_live"), "{command}");
    // Kernel threads count as having no mappings, not as failures.
    assert_eq!(all.skipped.failed, 0, "{:?}", all.skipped);
}

#[test]
fn this_process_cgroup() {
    let view = match host::CgroupView::read("/", Pid::Current) {
        Ok(view) => view,
        Err(err) => panic!("no cgroup: {err}"),
    };
    assert!(view.location.dir.is_dir(), "{:?}", view.location);
    match (&view.location.version, &view.memory) {
        (CgroupVersion::V1, CgroupMemory::V1(m)) => {
            let usage = *value(&m.usage_bytes);
            assert!(usage > 0);
            assert!(*value(&m.max_usage_bytes) >= usage);
            assert!(value(&m.stat).get("total_rss").is_some());
            assert!(*value(&m.working_set_bytes) <= usage);
            assert!(m.oom_control.is_available());
            assert!(m.limit_bytes.is_available());
        }
        (CgroupVersion::V2, CgroupMemory::V2(m)) => {
            // The root cgroup has no memory.current; a child has.
            if let Some(current) = m.current_bytes.value() {
                assert!(*current > 0);
                assert!(m.max_bytes.is_available());
            }
        }
        other => panic!("version and memory disagree: {other:?}"),
    }
}

#[test]
fn vmstat_rates_over_a_short_interval() {
    let before = VmstatSample::read("/").unwrap();
    // Fault in 4 MiB of fresh pages, so the host's fault counter moves.
    let ballast = std::hint::black_box(vec![1u8; 4 << 20]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let after = VmstatSample::read("/").unwrap();
    drop(ballast);
    let rates = VmstatRates::from_samples(&before, &after).unwrap();
    assert!(rates.interval_seconds >= 0.05, "{rates:?}");
    assert!(
        rates.pgfault_per_sec > 0.0,
        "the pages touched in between faulted: {rates:?}"
    );
    for rate in [
        rates.swap_in_kib_per_sec,
        rates.swap_out_kib_per_sec,
        rates.pgmajfault_per_sec,
        rates.allocstall_per_sec,
    ] {
        assert!(rate.is_finite(), "{rates:?}");
    }
    if let Some(e) = rates.reclaim_efficiency {
        assert!(
            (0.0..=1.0).contains(&e),
            "pages stolen are a share of those scanned: {rates:?}"
        );
    }
}

#[test]
fn the_whole_view_serializes() {
    let json = serde_json::to_string(&host::read_all("/")).unwrap();
    assert!(json.contains("\"mem_total_bytes\""));
}
