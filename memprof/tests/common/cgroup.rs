//! A child memory cgroup with a limit, for the tests that need the kernel
//! to OOM-kill a process (`oom_kill_log.rs`, `oom_dump.rs`): cgroup v1
//! `memory.limit_in_bytes` (swap limited too), or v2 `memory.max` where the
//! test's own cgroup may enable the memory controller for a child.

use std::path::{Path, PathBuf};
use std::time::Duration;

use memprof::host::{CgroupLocation, CgroupVersion, Pid};

/// A cgroup directory, removed when the test ends, however it ends.
pub struct Cgroup(pub PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.0.display());
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Moves this process into the cgroup at `dir`.
pub fn join(dir: &Path) {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string()).expect("join the cgroup");
}

/// Creates a child memory cgroup named `name` (with this process's pid)
/// below this process's, limited to `limit_bytes`, or says why it cannot.
pub fn limited_cgroup(name: &str, limit_bytes: u64) -> Result<Cgroup, String> {
    let own = CgroupLocation::find("/", Pid::Current)
        .map_err(|err| format!("no memory cgroup: {err}"))?;
    let dir = own.dir.join(format!("{name}-{}", std::process::id()));
    let write = |file: &str, value: &str| {
        std::fs::write(dir.join(file), value)
            .map_err(|err| format!("{}/{file}: {err}", dir.display()))
    };
    match own.version {
        CgroupVersion::V1 => {
            std::fs::create_dir(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
            let cgroup = Cgroup(dir.clone());
            write("memory.limit_in_bytes", &limit_bytes.to_string())?;
            // No swap for the group, so the limit kills instead of swapping.
            let _ = write("memory.swappiness", "0");
            let _ = write("memory.memsw.limit_in_bytes", &limit_bytes.to_string());
            Ok(cgroup)
        }
        CgroupVersion::V2 => {
            std::fs::write(own.dir.join("cgroup.subtree_control"), "+memory").map_err(|err| {
                format!(
                    "cannot enable the memory controller below {}: {err}",
                    own.path
                )
            })?;
            std::fs::create_dir(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
            let cgroup = Cgroup(dir.clone());
            write("memory.max", &limit_bytes.to_string())?;
            let _ = write("memory.swap.max", "0");
            Ok(cgroup)
        }
    }
}
