//! The parser on lines in the kernel's formats (`mm/oom_kill.c`,
//! `mm/memcontrol.c` `mem_cgroup_print_oom_context`, `kernel/printk`'s
//! `/dev/kmsg` records), and the reader on this machine's `/dev/kmsg`.

use super::*;

const KIB: u64 = 1024;

/// A memcg OOM as Linux 6.x logs it, with the dictionary lines /dev/kmsg
/// adds after a record and unrelated records around it.
const MEMCG_KILL: &str = "\
6,1201,5123400,-;leaky invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n\
4,1202,5123410,-;CPU: 1 PID: 4242 Comm: leaky Not tainted 6.1.0 #1\n\
6,1240,5123900,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/app.service,task_memcg=/system.slice/app.service,task=leaky,pid=4242,uid=1000\n\
3,1241,5123950,-;Memory cgroup out of memory: Killed process 4242 (leaky) total-vm:2210240kB, anon-rss:204012kB, file-rss:1536kB, shmem-rss:4kB, UID:1000 pgtables:512kB oom_score_adj:-100\n\
\x20SUBSYSTEM=memory\n\
\x20DEVICE=+memory:x\n\
6,1242,5124100,-;oom_reaper: reaped process 4242 (leaky), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB\n";

fn parse(text: &str, clock: Option<LogClock>) -> OomLog {
    OomLog::parse(text.as_bytes(), clock).unwrap()
}

#[test]
fn memcg_kill_with_its_summary() {
    let clock = LogClock {
        monotonic_usec: 15_123_950,
        unix_seconds: 1_700_000_010.0,
    };
    let log = parse(MEMCG_KILL, Some(clock));
    assert_eq!(log.kills.len(), 1, "{log:?}");
    assert_eq!(log.malformed_records, 0);
    assert_eq!(log.records, 5);
    let kill = &log.kills[0];
    assert_eq!(kill.pid, 4242);
    assert_eq!(kill.name, "leaky");
    assert_eq!(kill.boot_usec, 5_123_950);
    assert_eq!(kill.total_vm_bytes, 2_210_240 * KIB);
    assert_eq!(kill.anon_rss_bytes, 204_012 * KIB);
    assert_eq!(kill.file_rss_bytes, 1_536 * KIB);
    assert_eq!(kill.shmem_rss_bytes, 4 * KIB);
    assert_eq!(kill.rss_bytes(), (204_012 + 1_536 + 4) * KIB);
    assert_eq!(kill.uid, Some(1000));
    assert_eq!(kill.page_tables_bytes, Some(512 * KIB));
    assert_eq!(kill.oom_score_adj, Some(-100));
    assert_eq!(kill.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert_eq!(kill.oom_memcg.as_deref(), Some("/system.slice/app.service"));
    assert_eq!(
        kill.task_memcg.as_deref(),
        Some("/system.slice/app.service")
    );
    assert_eq!(kill.memcg(), Some("/system.slice/app.service"));
    assert_eq!(kill.age_seconds, Some(10.0));
    assert_eq!(kill.unix_seconds, Some(1_700_000_000.0));
}

#[test]
fn global_oom_names_the_victims_memcg() {
    let log = parse(
        "6,10,900,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice/user-0.slice/session-1.scope,task=big job,pid=77,uid=0\n\
         3,11,901,-;Out of memory: Killed process 77 (big job) total-vm:100kB, anon-rss:80kB, file-rss:8kB, shmem-rss:0kB, UID:0 pgtables:12kB oom_score_adj:0\n",
        None,
    );
    let kill = &log.kills[0];
    assert_eq!((kill.pid, kill.name.as_str()), (77, "big job"));
    assert_eq!(kill.constraint.as_deref(), Some("CONSTRAINT_NONE"));
    assert_eq!(kill.oom_memcg, None);
    assert_eq!(
        kill.memcg(),
        Some("/user.slice/user-0.slice/session-1.scope")
    );
    assert_eq!((kill.age_seconds, kill.unix_seconds), (None, None));
}

#[test]
fn kill_without_summary_and_older_formats() {
    // Linux 4.14: no summary line, no UID/pgtables/oom_score_adj.
    let log = parse(
        "3,5,700,-;Out of memory: Kill process 31 (victim) score 900 or sacrifice child\n\
         3,6,701,-;Killed process 31 (victim) total-vm:4000kB, anon-rss:3000kB, file-rss:100kB, shmem-rss:0kB\n",
        None,
    );
    assert_eq!(log.kills.len(), 1);
    let kill = &log.kills[0];
    assert_eq!(kill.pid, 31);
    assert_eq!(kill.anon_rss_bytes, 3000 * KIB);
    assert_eq!(
        (kill.uid, kill.page_tables_bytes, kill.oom_score_adj),
        (None, None, None)
    );
    assert_eq!((kill.constraint.as_ref(), kill.memcg()), (None, None));
}

#[test]
fn summary_of_another_pid_is_not_taken() {
    let log = parse(
        "6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=x,pid=5,uid=0\n\
         3,2,2,-;Memory cgroup out of memory: Killed process 6 (y) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n",
        None,
    );
    assert_eq!(log.kills[0].pid, 6);
    assert_eq!(log.kills[0].constraint, None);
}

#[test]
fn names_with_parentheses_and_cgroup_paths_with_commas() {
    let log = parse(
        "6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/k8s/pod,a,task_memcg=/k8s/pod,a/c,task=w (1),pid=9,uid=0\n\
         3,2,2,-;Memory cgroup out of memory: Killed process 9 (w (1)) total-vm:1kB, anon-rss:2kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n",
        None,
    );
    let kill = &log.kills[0];
    assert_eq!(kill.name, "w (1)");
    assert_eq!(kill.oom_memcg.as_deref(), Some("/k8s/pod,a"));
    assert_eq!(kill.task_memcg.as_deref(), Some("/k8s/pod,a/c"));
}

#[test]
fn garbage_and_truncated_records_are_counted_not_fatal() {
    let log = parse(
        "not a record at all\n\
         3,x,y,-;Killed process 1 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n\
         3,2,100,-;Out of memory: Killed process 12 (cut) total-vm:1kB, anon-rss:\n\
         3,3,101,-;Out of memory: Killed process abc (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n\
         6,4,102,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null)\n\
         \u{0}\u{1}\u{ff}\n\
         3,5,103,-;Out of memory: Killed process 13 (ok) total-vm:1kB, anon-rss:7kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n\
         3,6,104,-;Out of memory: Killed process 14 (last) total-vm:1kB, anon-r",
        None,
    );
    assert_eq!(log.kills.len(), 1, "{log:?}");
    assert_eq!(log.kills[0].pid, 13);
    assert_eq!(log.malformed_records, 7, "{log:?}");
    assert_eq!(log.records, 8);
}

#[test]
fn non_utf8_and_huge_lines_stay_bounded() {
    let mut bytes = b"3,1,1,-;".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 3 * MAX_RECORD_BYTES));
    bytes.extend_from_slice(b"\n3,2,2,-;Out of memory: Killed process 3 (\xff\xfe) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n");
    let log = OomLog::parse(&bytes[..], None).unwrap();
    assert_eq!(log.kills.len(), 1);
    assert_eq!(log.kills[0].name, "\u{fffd}\u{fffd}");
}

#[test]
fn keeps_the_last_kills() {
    let mut text = String::new();
    for pid in 1..=(MAX_KILLS as u32 + 10) {
        text.push_str(&format!(
            "3,{pid},{pid},-;Out of memory: Killed process {pid} (p) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n"
        ));
    }
    let log = parse(&text, None);
    assert_eq!(log.kills.len(), MAX_KILLS);
    assert_eq!(log.dropped_kills, 10);
    assert_eq!(log.kills[0].pid, 11);
    assert_eq!(log.kills[MAX_KILLS - 1].pid, MAX_KILLS as u32 + 10);
}

#[test]
fn a_missing_device_is_a_reason() {
    let dir = std::env::temp_dir().join(format!("memprof-oomlog-{}", std::process::id()));
    let err = OomLog::read(&dir).unwrap_err();
    assert!(err.to_string().contains("dev/kmsg: not found"), "{err}");
}

#[test]
fn a_saved_log_under_a_root_reads_like_the_device() {
    let dir = std::env::temp_dir().join(format!("memprof-oomlog-saved-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("dev")).unwrap();
    std::fs::write(dir.join("dev/kmsg"), MEMCG_KILL).unwrap();
    let log = OomLog::read(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let log = log.unwrap();
    assert_eq!(log.kills.len(), 1);
    assert_eq!(log.kills[0].pid, 4242);
    assert!(log.kills[0].age_seconds.is_some());
}

/// The real device: as root it is readable and the reading is Ok with zero
/// or more kills; where it is refused the reason names it.
#[test]
fn reads_this_machines_kmsg() {
    match OomLog::read("/") {
        Ok(log) => {
            assert!(log.records > 0, "an empty kernel log: {log:?}");
            for kill in &log.kills {
                assert!(kill.pid > 0 && kill.age_seconds.is_some(), "{kill:?}");
            }
        }
        Err(err) => {
            let text = err.to_string();
            assert!(text.starts_with("/dev/kmsg: "), "{text}");
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            assert!(euid != 0, "root could not read /dev/kmsg: {text}");
        }
    }
}
