//! The process and the host around it, read from /proc, /sys and cgroup files.
//!
//! An operator chasing an OOM kill looks at the process (`/proc/<pid>/status`,
//! `smaps_rollup`), the machine (`/proc/meminfo`, `/proc/buddyinfo`,
//! `vmstat`, pressure stall information, the vm sysctls and transparent huge
//! pages) and the cgroup that holds the process (its limit and usage, its OOM
//! events), and at the processes using the most memory (as `smem` shows
//! them). This module reads all of these.
//!
//! Every reader takes a root directory (`/` on a live system) so tests can
//! point it at a fixture tree. Parsing is separate from reading: each type has
//! a `parse` over any [`BufRead`](std::io::BufRead) and a thin `read(root)`.
//! A file that is missing, unreadable or malformed becomes a
//! [`Reading::Unavailable`] whose reason names the file; nothing here panics.
//!
//! Every amount is in bytes, in fields named `*_bytes`; the kernel's `kB` is
//! KiB. Readings are plain data: the doctor and the HTTP endpoint take them,
//! they never read files themselves.

mod buddyinfo;
mod cgroup;
mod error;
mod meminfo;
mod oom_log;
mod oom_report;
mod pressure;
mod process;
mod reading;
mod render;
mod sysctl;
mod top;
mod util;
mod view;
mod vmstat;

pub use self::buddyinfo::{BuddyZone, Buddyinfo, ContigPageInfo, OrderInfo};
pub use self::cgroup::{
    parse_limit, CgroupEntry, CgroupLocation, CgroupMembership, CgroupMemory, CgroupV1Memory,
    CgroupV2Memory, CgroupVersion, CgroupView, Located, MemoryEvents, MemoryStat, Mount, Mountinfo,
    OomControl,
};
pub use self::error::{ParseError, ReadError, ReadErrorKind};
pub use self::meminfo::Meminfo;
pub use self::oom_log::{LogClock, OomKill, OomLog, OomLogParser, MAX_KILLS, MAX_RECORD_BYTES};
pub use self::oom_report::{kill_line, render_oom, utc, OomCounters, OomReport};
pub use self::pressure::{Pressure, PressureLine};
pub use self::process::{Pid, ProcStatus, SmapsRollup, Statm};
pub use self::reading::{Limit, Reading};
pub use self::render::{render_host, render_top};
pub use self::sysctl::{parse_choice, Thp, VmSysctls};
pub use self::top::{MemoryTotals, ProcessMemory, Skipped, TopProcesses};
pub use self::view::{
    page_size_bytes, read_all, read_all_with, HostView, Overview, ProcessView, ReadOptions,
};
pub use self::vmstat::{Vmstat, VmstatRates, VmstatSample};
