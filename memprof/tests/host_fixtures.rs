//! The host readers against fixture trees: `tests/data/host/v1` (a hybrid
//! hierarchy with the memory controller on cgroup v1, as on many hosts
//! still) and `tests/data/host/v2` (a pure cgroup v2 system, with no PSI file
//! and no THP defrag file, to see unavailable readings).

use std::path::{Path, PathBuf};
use std::time::Duration;

use memprof::host::{
    self, BuddyZone, Buddyinfo, CgroupLocation, CgroupMembership, CgroupMemory, CgroupVersion,
    CgroupView, Limit, Located, Meminfo, Mountinfo, Pid, Pressure, ProcStatus, ReadOptions,
    Reading, SmapsRollup, Statm, Thp, TopProcesses, VmSysctls, Vmstat, VmstatRates,
};

fn tree(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/host")
        .join(name)
}

const KIB: u64 = 1024;

fn value<T: std::fmt::Debug>(reading: &Reading<T>) -> &T {
    match reading.value() {
        Some(v) => v,
        None => panic!("unavailable: {:?}", reading.reason()),
    }
}

#[test]
fn meminfo_in_bytes_with_every_key() {
    let m = Meminfo::read(tree("v1")).unwrap();
    assert_eq!(m.mem_total_bytes, Some(16_318_480 * KIB));
    assert_eq!(m.mem_free_bytes, Some(812_344 * KIB));
    assert_eq!(m.mem_available_bytes, Some(9_876_543 * KIB));
    assert_eq!(m.swap_total_bytes, Some(2_097_148 * KIB));
    assert_eq!(m.s_reclaimable_bytes, Some(600_000 * KIB));
    assert_eq!(m.committed_as_bytes, Some(12_000_000 * KIB));
    assert_eq!(m.commit_limit_bytes, Some(10_256_388 * KIB));
    assert_eq!(m.anon_huge_pages_bytes, Some(409_600 * KIB));
    assert_eq!(m.huge_pages_total, Some(4));
    assert_eq!(m.huge_pages_free, Some(3));
    assert_eq!(m.hugepagesize_bytes, Some(2048 * KIB));
    assert_eq!(m.entries.get("DirectMap4k"), Some(&(300_000 * KIB)));
    assert_eq!(m.entries.len(), 30);
}

#[test]
fn buddyinfo_indices_match_hand_computed_values() {
    let page = host::page_size_bytes();
    let b = Buddyinfo::read(tree("v1")).unwrap();
    assert_eq!(b.page_size_bytes, page);
    assert_eq!(b.zones.len(), 2);

    // DMA: nothing free. The kernel reports unusable 1.000 (no free memory
    // counts as all unusable) and fragmentation 0.000 (no free blocks).
    let dma = &b.zones[0];
    assert_eq!((dma.node, dma.zone.as_str(), dma.free_pages), (0, "DMA", 0));
    assert!(dma
        .orders
        .iter()
        .all(|o| o.unusable_free_index_milli == 1000));
    assert!(dma
        .orders
        .iter()
        .all(|o| o.fragmentation_index_milli == Some(0)));

    // Normal: 100 50 20 10 5 2 1 0 0 0 0 free blocks at orders 0..=10.
    // free_pages = 100 + 50*2 + 20*4 + 10*8 + 5*16 + 2*32 + 1*64 = 568,
    // free_blocks_total = 188.
    let normal = &b.zones[1];
    assert_eq!(normal.zone, "Normal");
    assert_eq!(normal.free_pages, 568);
    assert_eq!(normal.free_bytes, 568 * page);
    assert_eq!(
        normal.free_blocks(),
        vec![100, 50, 20, 10, 5, 2, 1, 0, 0, 0, 0]
    );
    // unusable_free_index(order) = (568 - suitable << order) * 1000 / 568:
    //  order 1: suitable = 50 + 20*2 + 10*4 + 5*8 + 2*16 + 1*32 = 234 -> 468 pages,
    //           100_000 / 568 = 176
    //  order 2: 20 + 10*2 + 5*4 + 2*8 + 1*16 = 92 -> 368 pages, 200_000 / 568 = 352
    //  order 3: 10 + 5*2 + 2*4 + 1*8 = 36 -> 288 pages, 280_000 / 568 = 492
    //  order 4: 5 + 2*2 + 1*4 = 13 -> 208 pages, 360_000 / 568 = 633
    //  order 5: 2 + 1*2 = 4 -> 128 pages, 440_000 / 568 = 774
    //  order 6: 1 -> 64 pages, 504_000 / 568 = 887
    //  orders 7..=10: nothing suitable -> 1000
    let unusable: Vec<u64> = normal
        .orders
        .iter()
        .map(|o| o.unusable_free_index_milli)
        .collect();
    assert_eq!(
        unusable,
        vec![0, 176, 352, 492, 633, 774, 887, 1000, 1000, 1000, 1000]
    );
    assert_eq!(normal.orders[2].unusable_free_index, 0.352);
    // fragmentation index: not applicable (-1000 in the kernel) while a
    // suitable block is free (orders 0..=6); then
    // 1000 - (1000 + 568 * 1000 / 2^order) / 188:
    //  order 7:  568_000 / 128  = 4437; 5437 / 188 = 28; 1000 - 28 = 972
    //  order 8:  568_000 / 256  = 2218; 3218 / 188 = 17; 983
    //  order 9:  568_000 / 512  = 1109; 2109 / 188 = 11; 989
    //  order 10: 568_000 / 1024 = 554;  1554 / 188 = 8;  992
    let frag: Vec<Option<i64>> = normal
        .orders
        .iter()
        .map(|o| o.fragmentation_index_milli)
        .collect();
    assert_eq!(
        frag,
        vec![
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(972),
            Some(983),
            Some(989),
            Some(992)
        ]
    );
    assert_eq!(normal.orders[7].fragmentation_index, Some(0.972));
    assert_eq!(normal.orders[10].block_bytes, 1024 * page);

    // The same arithmetic through the public constructor.
    let z = BuddyZone::new(3, "Movable", &[100, 50, 20, 10, 5, 2, 1, 0, 0, 0, 0], 4096);
    assert_eq!(
        z.orders,
        normal
            .orders
            .iter()
            .map(|o| {
                let mut o = o.clone();
                o.block_bytes = 4096u64 << o.order;
                o
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn vmstat_keeps_every_counter() {
    let v = Vmstat::read(tree("v1")).unwrap();
    assert_eq!(v.counters.len(), 22);
    assert_eq!(v.get("pswpout"), Some(2000));
    assert_eq!(v.allocstall(), 4);
    // pgsteal_kswapd + pgsteal_direct; the anon/file split is not added again.
    assert_eq!(v.pgsteal(), 1000);
    // pgscan_kswapd + pgscan_direct; throttle events and the split left out.
    assert_eq!(v.pgscan(), 1200);
}

#[test]
fn vmstat_rates_between_two_readings() {
    let before = Vmstat::read(tree("v1")).unwrap();
    let after = Vmstat::parse_str(
        "pswpin 1100\npswpout 2400\npgmajfault 90\nallocstall_dma32 0\nallocstall_normal 9\n\
         allocstall_movable 3\ncompact_stall 18\ncompact_fail 8\ncompact_success 10\noom_kill 3\n\
         thp_fault_alloc 99\nthp_fault_fallback 27\npgscan_kswapd 2000\npgscan_direct 1000\n\
         pgscan_anon 9999\npgsteal_kswapd 1800\npgsteal_direct 550\npgsteal_anon 9999\n",
    )
    .unwrap();
    let r = VmstatRates::between(&before, &after, Duration::from_secs(4), 4096).unwrap();
    assert_eq!(r.interval_seconds, 4.0);
    // (1100 - 1000) pages * 4096 / 1024 = 400 KiB over 4 s.
    assert_eq!(r.swap_in_kib_per_sec, 100.0);
    // (2400 - 2000) * 4 KiB = 1600 KiB over 4 s.
    assert_eq!(r.swap_out_kib_per_sec, 400.0);
    assert_eq!(r.pgmajfault_per_sec, 10.0);
    // allocstall: (0 + 9 + 3) - (0 + 3 + 1) = 8 over 4 s.
    assert_eq!(r.allocstall_per_sec, 2.0);
    assert_eq!(r.compact_stall_per_sec, 2.0);
    assert_eq!(r.compact_fail_per_sec, 1.0);
    assert_eq!(r.compact_success_per_sec, 1.0);
    assert_eq!(r.oom_kills, 2);
    assert_eq!(r.thp_fault_fallback_per_sec, 5.0);
    assert_eq!(r.thp_fault_alloc_per_sec, 0.0);
    // scanned (2000 + 1000) - (1000 + 200) = 1800; reclaimed
    // (1800 + 550) - (900 + 100) = 1350; 1350 / 1800 = 0.75.
    assert_eq!(r.pgscan_per_sec, 450.0);
    assert_eq!(r.pgsteal_per_sec, 337.5);
    assert_eq!(r.reclaim_efficiency, Some(0.75));
    // A counter that went backwards counts as 0, not as a wrap.
    assert_eq!(
        VmstatRates::between(&after, &before, Duration::from_secs(1), 4096)
            .unwrap()
            .swap_in_kib_per_sec,
        0.0
    );
    // No scanning: no efficiency.
    let same = VmstatRates::between(&before, &before, Duration::from_secs(1), 4096).unwrap();
    assert_eq!(same.reclaim_efficiency, None);
}

#[test]
fn pressure_sysctls_and_thp() {
    let p = Pressure::read(tree("v1")).unwrap();
    assert_eq!(
        (p.some.avg10, p.some.avg60, p.some.avg300),
        (1.25, 0.5, 0.1)
    );
    assert_eq!(p.some.total_microseconds, 123_456_789);
    assert_eq!(p.full.map(|f| f.total_microseconds), Some(98_765_432));

    let s = VmSysctls::read(tree("v1"));
    assert_eq!(s.min_free_bytes, Reading::Available(67_584 * KIB));
    assert_eq!(s.overcommit_memory, Reading::Available(0));
    assert_eq!(s.overcommit_ratio, Reading::Available(50));
    assert_eq!(s.swappiness, Reading::Available(60));
    assert_eq!(s.watermark_scale_factor, Reading::Available(10));

    let t = Thp::read(tree("v1"));
    assert_eq!(t.enabled, Reading::Available("madvise".to_owned()));
    assert_eq!(t.defrag, Reading::Available("defer+madvise".to_owned()));
    let t2 = Thp::read(tree("v2"));
    let reason = t2.defrag.reason().unwrap_or_default();
    assert!(
        reason.contains("transparent_hugepage/defrag") && reason.contains("not found"),
        "{reason}"
    );
}

#[test]
fn process_status_rollup_statm() {
    let page = host::page_size_bytes();
    let s = ProcStatus::read(tree("v1"), Pid::Current).unwrap();
    assert_eq!(s.name.as_deref(), Some("soak-svc"));
    assert_eq!(s.uid, Some(1000));
    assert_eq!(s.vm_rss_bytes, Some(120_000 * KIB));
    assert_eq!(s.vm_hwm_bytes, Some(150_000 * KIB));
    assert_eq!(s.rss_anon_bytes, Some(100_000 * KIB));
    assert_eq!(s.rss_file_bytes, Some(19_000 * KIB));
    assert_eq!(s.rss_shmem_bytes, Some(1_000 * KIB));
    assert_eq!(s.vm_swap_bytes, Some(2_048 * KIB));
    assert_eq!(s.vm_size_bytes, Some(800_000 * KIB));
    assert_eq!(s.vm_data_bytes, Some(300_000 * KIB));

    let r = SmapsRollup::read(tree("v1"), Pid::Current).unwrap();
    assert_eq!(r.rss_bytes, Some(120_000 * KIB));
    assert_eq!(r.pss_bytes, Some(110_500 * KIB));
    assert_eq!(r.pss_anon_bytes, Some(100_000 * KIB));
    assert_eq!(r.pss_file_bytes, Some(9_500 * KIB));
    assert_eq!(r.pss_shmem_bytes, Some(1_000 * KIB));
    assert_eq!(r.shared_clean_bytes, Some(18_000 * KIB));
    assert_eq!(r.shared_dirty_bytes, Some(1_000 * KIB));
    assert_eq!(r.private_clean_bytes, Some(1_000 * KIB));
    assert_eq!(r.private_dirty_bytes, Some(100_000 * KIB));
    assert_eq!(r.anon_huge_pages_bytes, Some(40_960 * KIB));
    assert_eq!(r.swap_bytes, Some(2_048 * KIB));
    assert_eq!(r.swap_pss_bytes, Some(2_000 * KIB));
    assert_eq!(r.uss_bytes(), 101_000 * KIB);

    let m = Statm::read(tree("v1"), Pid::Current).unwrap();
    assert_eq!(m.size_bytes, 200_000 * page);
    assert_eq!(m.resident_bytes, 30_000 * page);
    assert_eq!(m.shared_bytes, 5_000 * page);
    assert_eq!(m.text_bytes, 100 * page);
    assert_eq!(m.data_bytes, 75_000 * page);

    // A numeric pid reads /proc/<pid>.
    let other = SmapsRollup::read(tree("v1"), Pid::Id(555)).unwrap();
    assert_eq!(other.pss_bytes, Some(290_000 * KIB));
}

#[test]
fn cgroup_v1_in_a_hybrid_hierarchy() {
    let root = tree("v1");
    let view = CgroupView::read(&root, Pid::Current).unwrap();
    assert_eq!(view.location.version, CgroupVersion::V1);
    assert_eq!(view.location.path, "/process_api/767f0629");
    assert_eq!(
        view.location.dir,
        root.join("sys/fs/cgroup/memory/process_api/767f0629")
    );
    assert_eq!(view.location.located, Located::Mountinfo);
    let CgroupMemory::V1(m) = &view.memory else {
        panic!("expected v1, got {:?}", view.memory);
    };
    assert_eq!(
        m.limit_bytes,
        Reading::Available(Limit::Bytes(2_147_483_648))
    );
    // 9223372036854771712: PAGE_COUNTER_MAX pages, i.e. no limit.
    assert_eq!(m.soft_limit_bytes, Reading::Available(Limit::Unlimited));
    assert_eq!(m.memsw_limit_bytes, Reading::Available(Limit::Unlimited));
    assert_eq!(m.usage_bytes, Reading::Available(1_073_741_824));
    assert_eq!(m.max_usage_bytes, Reading::Available(2_147_479_552));
    assert_eq!(m.failcnt, Reading::Available(17));
    let oom = value(&m.oom_control);
    assert!(!oom.oom_kill_disable && !oom.under_oom);
    assert_eq!(oom.oom_kill, Some(2));
    let stat = value(&m.stat);
    assert_eq!(stat.entries.len(), 16);
    assert_eq!(stat.get("hierarchical_memory_limit"), Some(2_147_483_648));
    // usage - total_inactive_file = 1073741824 - 300000000.
    assert_eq!(m.working_set_bytes, Reading::Available(773_741_824));
    let reason = m.memsw_usage_bytes.reason().unwrap_or_default();
    assert!(
        reason.contains("memory.memsw.usage_in_bytes: not found"),
        "{reason}"
    );

    // Without mountinfo, the conventional v1 path.
    let membership = CgroupMembership::read(&root, Pid::Current).unwrap();
    let loc = CgroupLocation::resolve(&root, &membership, &Mountinfo::default()).unwrap();
    assert_eq!(loc.located, Located::Conventional);
    assert_eq!(
        loc.dir,
        root.join("sys/fs/cgroup/memory/process_api/767f0629")
    );
}

#[test]
fn cgroup_v2() {
    let root = tree("v2");
    let view = CgroupView::read(&root, Pid::Current).unwrap();
    assert_eq!(view.location.version, CgroupVersion::V2);
    assert_eq!(view.location.path, "/system.slice/app.service");
    assert_eq!(
        view.location.dir,
        root.join("sys/fs/cgroup/system.slice/app.service")
    );
    assert_eq!(view.location.located, Located::Mountinfo);
    let CgroupMemory::V2(m) = &view.memory else {
        panic!("expected v2, got {:?}", view.memory);
    };
    assert_eq!(m.current_bytes, Reading::Available(734_003_200));
    assert_eq!(m.max_bytes, Reading::Available(Limit::Bytes(1_073_741_824)));
    assert_eq!(m.high_bytes, Reading::Available(Limit::Unlimited));
    assert_eq!(m.low_bytes, Reading::Available(0));
    assert_eq!(m.peak_bytes, Reading::Available(1_000_000_000));
    let e = value(&m.events);
    assert_eq!(
        (e.low, e.high, e.max, e.oom, e.oom_kill, e.oom_group_kill),
        (Some(0), Some(0), Some(42), Some(3), Some(2), Some(0))
    );
    assert_eq!(value(&m.stat).get("workingset_refault_file"), Some(30));
    assert_eq!(value(&m.stat).entries.len(), 12);
    let p = value(&m.pressure);
    assert_eq!((p.some.avg10, p.some.total_microseconds), (12.0, 4_000_000));
    assert_eq!(m.swap_current_bytes, Reading::Available(0));
    assert_eq!(m.swap_max_bytes, Reading::Available(Limit::Unlimited));
    // memory.current - inactive_file = 734003200 - 104857600.
    assert_eq!(m.working_set_bytes, Reading::Available(629_145_600));
}

#[test]
fn cgroup_location_variants() {
    let root = tree("v2");
    let membership = CgroupMembership::parse_str("0::/system.slice/app.service\n").unwrap();
    // A mount whose root is a parent of the cgroup (as bind-mounted into a
    // container): strip the mount root from the path.
    let nested = Mountinfo::parse_str(
        "30 22 0:23 /system.slice /sys/fs/cgroup/system.slice rw - cgroup2 cgroup2 rw\n",
    )
    .unwrap();
    let loc = CgroupLocation::resolve(&root, &membership, &nested).unwrap();
    assert_eq!(loc.located, Located::Mountinfo);
    assert_eq!(loc.dir, root.join("sys/fs/cgroup/system.slice/app.service"));
    // A mount root that is not above the path (a cgroup namespace): the
    // mount point itself.
    let elsewhere =
        Mountinfo::parse_str("30 22 0:23 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
            .unwrap();
    let loc = CgroupLocation::resolve(&root, &membership, &elsewhere).unwrap();
    assert_eq!(loc.located, Located::MountRoot);
    assert_eq!(loc.dir, root.join("sys/fs/cgroup"));
    // No mountinfo: /sys/fs/cgroup/<path>.
    let loc = CgroupLocation::resolve(&root, &membership, &Mountinfo::default()).unwrap();
    assert_eq!(loc.located, Located::Conventional);
    assert_eq!(loc.dir, root.join("sys/fs/cgroup/system.slice/app.service"));
    // Only a named v1 hierarchy: no memory cgroup.
    let none = CgroupMembership::parse_str("1:name=systemd:/\n").unwrap();
    assert_eq!(
        CgroupLocation::resolve(&root, &none, &Mountinfo::default()),
        None
    );
}

#[test]
fn top_processes_by_pss() {
    // Program names only: no argument leaves the reader unless asked for.
    let top = TopProcesses::read(tree("v1"), 10).unwrap();
    let rows: Vec<(u32, &str, &str, Option<&str>, u64)> = top
        .processes
        .iter()
        .map(|p| {
            (
                p.pid,
                p.user.as_str(),
                p.name.as_str(),
                p.command.as_deref(),
                p.pss_bytes,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            // uid 2000 is not in etc/passwd: shown as the number.
            (555, "2000", "batch", None, 290_000 * KIB),
            (4242, "alice", "soak-svc", None, 110_500 * KIB),
            (1, "root", "systemd", None, 6_000 * KIB),
        ]
    );
    let with_lines = TopProcesses::read_with_command_lines(tree("v1"), 10).unwrap();
    let lines: Vec<Option<&str>> = with_lines
        .processes
        .iter()
        .map(|p| p.command.as_deref())
        .collect();
    assert_eq!(
        lines,
        [
            Some("python3 batch.py"),
            Some("/usr/bin/soak-svc --port 6060"),
            // An empty cmdline falls back to the program's name.
            Some("systemd"),
        ]
    );
    let p = &top.processes[0];
    assert_eq!(
        (p.rss_bytes, p.uss_bytes, p.swap_bytes),
        (300_000 * KIB, 285_000 * KIB, 4_096 * KIB)
    );
    assert_eq!(top.totals.processes, 3);
    assert_eq!(top.totals.pss_bytes, 406_500 * KIB);
    assert_eq!(top.totals.rss_bytes, 432_000 * KIB);
    assert_eq!(top.totals.uss_bytes, 391_000 * KIB);
    assert_eq!(top.totals.swap_bytes, 6_144 * KIB);
    // 77 is a kernel thread (empty rollup), 88 has no rollup (exited).
    assert_eq!(top.skipped.no_mappings, 1);
    assert_eq!(top.skipped.vanished, 1);
    assert_eq!(top.skipped.denied, 0);

    let top2 = TopProcesses::read(tree("v1"), 2).unwrap();
    assert_eq!(
        top2.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        vec![555, 4242]
    );
    assert_eq!(top2.totals, top.totals);
}

#[test]
fn missing_files_are_unavailable_with_the_file_named() {
    let root = tree("does-not-exist");
    let all = host::read_all(&root);
    let reason = |r: Option<&str>| r.unwrap_or_default().to_owned();
    assert!(reason(all.host.meminfo.reason()).contains("proc/meminfo: not found"));
    assert!(reason(all.host.buddyinfo.reason()).contains("proc/buddyinfo: not found"));
    assert!(reason(all.host.vmstat.reason()).contains("proc/vmstat: not found"));
    assert!(reason(all.host.pressure.reason()).contains("proc/pressure/memory: not found"));
    assert!(
        reason(all.host.sysctls.swappiness.reason()).contains("proc/sys/vm/swappiness: not found")
    );
    assert!(
        reason(all.host.thp.enabled.reason()).contains("transparent_hugepage/enabled: not found")
    );
    assert!(reason(all.process.status.reason()).contains("proc/self/status: not found"));
    assert!(reason(all.process.smaps_rollup.reason()).contains("proc/self/smaps_rollup: not found"));
    assert!(reason(all.process.statm.reason()).contains("proc/self/statm: not found"));
    assert!(reason(all.cgroup.reason()).contains("proc/self/cgroup: not found"));
    assert!(reason(all.top_processes.reason()).contains("proc: not found"));

    // A pure v2 system without PSI.
    let v2 = host::read_all(tree("v2"));
    assert!(reason(v2.host.pressure.reason()).contains("proc/pressure/memory: not found"));
    assert!(v2.host.meminfo.is_available());
}

#[test]
fn read_all_serializes_values_and_reasons() {
    let all = host::read_all_with(tree("v2"), &ReadOptions::default().top_limit(1));
    let json = serde_json::to_value(&all).unwrap();
    assert_eq!(json["host"]["meminfo"]["mem_total_bytes"], 8_000_000 * KIB);
    assert!(json["host"]["pressure"]["unavailable"]
        .as_str()
        .is_some_and(|r| r.contains("pressure/memory")));
    assert_eq!(json["host"]["thp"]["enabled"], "madvise");
    assert_eq!(json["host"]["sysctls"]["swappiness"], 10);
    assert_eq!(json["cgroup"]["version"], "v2");
    assert_eq!(json["cgroup"]["located"], "mountinfo");
    assert_eq!(json["cgroup"]["memory"]["max_bytes"], 1_073_741_824u64);
    assert_eq!(json["cgroup"]["memory"]["high_bytes"], "unlimited");
    assert_eq!(json["cgroup"]["memory"]["events"]["oom_kill"], 2);
    assert_eq!(json["process"]["pid"], "self");
    assert_eq!(json["process"]["smaps_rollup"]["pss_bytes"], 110_500 * KIB);
    assert_eq!(json["top_processes"]["processes"][0]["pid"], 555);
    assert_eq!(
        json["top_processes"]["processes"].as_array().map(Vec::len),
        Some(1)
    );
    let zones = &json["host"]["buddyinfo"]["zones"];
    assert_eq!(zones[1]["zone"], "Normal");
    assert_eq!(zones[1]["orders"][1]["unusable_free_index"], 0.192);
    assert_eq!(
        zones[1]["orders"][0]["fragmentation_index"],
        serde_json::Value::Null
    );

    let none = host::read_all_with(tree("v2"), &ReadOptions::default().top_limit(0));
    assert!(!none.top_processes.is_available());
}
