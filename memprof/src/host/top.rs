//! The processes using the most memory, by PSS, as `smem -tkp` lists them.
//!
//! PSS (proportional set size) charges each shared page to the processes
//! mapping it in equal parts, so, unlike RSS, the figures add up to what the
//! processes really use. The scan reads `/proc/<pid>/smaps_rollup` of every
//! process; processes that exit mid-scan or that belong to another user
//! (reading another user's smaps needs ptrace access) are skipped and
//! counted, never errors.
//!
//! Rows name each process's program, not its arguments: command lines
//! often carry secrets (`--db-password=...`, a token in `curl -H ...`), and
//! the rows go out over HTTP. [`TopProcesses::read_with_command_lines`]
//! adds the whole lines for the operator's own terminal.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::error::{ParseError, ReadError, ReadErrorKind};
use super::process::{Pid, ProcStatus, SmapsRollup};
use super::util;

/// One process's memory, as a row of `smem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProcessMemory {
    /// The process id.
    pub pid: u32,
    /// The owner's user name from `/etc/passwd`, or the numeric uid.
    pub user: String,
    /// The real uid, when `status` showed it.
    pub uid: Option<u32>,
    /// The program's name: `comm`, the name the kernel keeps (at most 15
    /// bytes), or the base name of the program path (`argv[0]`) when
    /// `comm` is that name cut short. Never an argument.
    pub name: String,
    /// The whole command line, arguments joined by spaces, when asked for
    /// ([`TopProcesses::read_with_command_lines`]); `None` otherwise, and
    /// left out of JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `Swap` from smaps_rollup.
    pub swap_bytes: u64,
    /// USS: `Private_Clean + Private_Dirty`.
    pub uss_bytes: u64,
    /// `Pss`.
    pub pss_bytes: u64,
    /// `Rss`.
    pub rss_bytes: u64,
}

/// Sums over every process read (not only the listed ones), as `smem -t`'s
/// last line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemoryTotals {
    /// Processes read.
    pub processes: u64,
    /// Total swap.
    pub swap_bytes: u64,
    /// Total USS.
    pub uss_bytes: u64,
    /// Total PSS.
    pub pss_bytes: u64,
    /// Total RSS (counts shared pages once per process).
    pub rss_bytes: u64,
}

/// Processes left out of a scan, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Skipped {
    /// Exited between listing `/proc` and reading their files.
    pub vanished: u64,
    /// Not readable by this process (another user's).
    pub denied: u64,
    /// No address space: kernel threads and zombies (the kernel answers
    /// `ESRCH` or an empty file).
    pub no_mappings: u64,
    /// Any other failure (an I/O error, a file that did not parse).
    pub failed: u64,
}

/// The top processes by PSS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TopProcesses {
    /// The processes with the most PSS, largest first (ties by pid), at most
    /// the limit asked for.
    pub processes: Vec<ProcessMemory>,
    /// Sums over every process read.
    pub totals: MemoryTotals,
    /// Processes that could not be read.
    pub skipped: Skipped,
}

impl TopProcesses {
    /// Scans `<root>/proc/<pid>/smaps_rollup` for every process and keeps
    /// the `limit` largest by PSS, named by program ([`ProcessMemory::name`],
    /// no command lines). Fails only when `<root>/proc` cannot be listed.
    ///
    /// # Errors
    ///
    /// A `ReadError` when `/proc` itself cannot be listed; a process that exits
    /// or cannot be read while it is scanned is skipped.
    pub fn read(root: impl AsRef<Path>, limit: usize) -> Result<TopProcesses, ReadError> {
        TopProcesses::scan(root.as_ref(), limit, false)
    }

    /// [`TopProcesses::read`], with each process's whole command line in
    /// [`ProcessMemory::command`]. For the operator's own eyes: arguments
    /// can carry secrets.
    ///
    /// # Errors
    ///
    /// A `ReadError` when `/proc` itself cannot be listed; a process that exits
    /// or cannot be read while it is scanned is skipped.
    pub fn read_with_command_lines(
        root: impl AsRef<Path>,
        limit: usize,
    ) -> Result<TopProcesses, ReadError> {
        TopProcesses::scan(root.as_ref(), limit, true)
    }

    fn scan(root: &Path, limit: usize, command_lines: bool) -> Result<TopProcesses, ReadError> {
        let proc_dir = util::join(root, "/proc");
        let listing = std::fs::read_dir(&proc_dir).map_err(|err| ReadError::io(&proc_dir, &err))?;
        let users = std::fs::read(util::join(root, "/etc/passwd"))
            .map(|bytes| parse_passwd(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut totals = MemoryTotals::default();
        let mut skipped = Skipped::default();
        for entry in listing.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            match read_process(root, pid, &users, command_lines) {
                Ok(row) => {
                    totals.processes = totals.processes.saturating_add(1);
                    totals.swap_bytes = totals.swap_bytes.saturating_add(row.swap_bytes);
                    totals.uss_bytes = totals.uss_bytes.saturating_add(row.uss_bytes);
                    totals.pss_bytes = totals.pss_bytes.saturating_add(row.pss_bytes);
                    totals.rss_bytes = totals.rss_bytes.saturating_add(row.rss_bytes);
                    rows.push(row);
                }
                Err(err) => {
                    let counter = match err.kind {
                        ReadErrorKind::NotFound => &mut skipped.vanished,
                        ReadErrorKind::PermissionDenied => &mut skipped.denied,
                        ReadErrorKind::NoSuchProcess
                        | ReadErrorKind::Parse(ParseError::Missing { .. }) => {
                            &mut skipped.no_mappings
                        }
                        // A process that exits while its file is read.
                        ReadErrorKind::Parse(ParseError::Io(_)) => &mut skipped.vanished,
                        _ => &mut skipped.failed,
                    };
                    *counter = counter.saturating_add(1);
                }
            }
        }
        rows.sort_by(|a, b| b.pss_bytes.cmp(&a.pss_bytes).then(a.pid.cmp(&b.pid)));
        rows.truncate(limit);
        Ok(TopProcesses {
            processes: rows,
            totals,
            skipped,
        })
    }
}

fn read_process(
    root: &Path,
    pid: u32,
    users: &HashMap<u32, String>,
    command_lines: bool,
) -> Result<ProcessMemory, ReadError> {
    let rollup = SmapsRollup::read(root, Pid::Id(pid))?;
    let status = ProcStatus::read(root, Pid::Id(pid))?;
    let cmdline = std::fs::read(Pid::Id(pid).path(root, "cmdline")).unwrap_or_default();
    let comm = status.name.as_deref().unwrap_or_default();
    let name = program_name(comm, &cmdline);
    let command = command_lines.then(|| command_line(&cmdline).unwrap_or_else(|| name.clone()));
    let user = match status.uid {
        Some(uid) => users.get(&uid).cloned().unwrap_or_else(|| uid.to_string()),
        None => String::from("?"),
    };
    Ok(ProcessMemory {
        pid,
        user,
        uid: status.uid,
        name,
        command,
        swap_bytes: rollup.swap_bytes.unwrap_or(0),
        uss_bytes: rollup.uss_bytes(),
        pss_bytes: rollup.pss_bytes.unwrap_or(0),
        rss_bytes: rollup.rss_bytes.unwrap_or(0),
    })
}

/// The kernel's `comm` holds at most this many bytes of a program's name.
const COMM_MAX: usize = 15;

/// The program's name from `comm` and the command line: `comm`, unless it
/// is the first [`COMM_MAX`] bytes of `argv[0]`'s base name, which is then
/// the whole name. A process may rewrite its `argv[0]` into a status line
/// (`nginx: worker process`, `postgres: user db ...`): only its first word
/// is looked at, and only when it extends `comm`, so no argument can show.
fn program_name(comm: &str, cmdline: &[u8]) -> String {
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    let first_word = argv0.split_whitespace().next().unwrap_or_default();
    let base = first_word.rsplit('/').next().unwrap_or_default();
    let extends_comm = comm.len() == COMM_MAX && base.len() > COMM_MAX && base.starts_with(comm);
    if extends_comm || comm.is_empty() {
        base.to_string()
    } else {
        comm.to_string()
    }
}

/// `/proc/<pid>/cmdline` (arguments separated and ended by NUL) joined by
/// spaces; `None` when empty.
fn command_line(bytes: &[u8]) -> Option<String> {
    let args: Vec<_> = bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// `/etc/passwd` (`name:password:uid:gid:...`) as uid to name; the first
/// name of a uid wins, malformed lines are skipped.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut users = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let (false, Ok(uid)) = (name.is_empty(), uid.parse::<u32>()) {
            users.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwd_and_cmdline() {
        let users = parse_passwd("root:x:0:0:root:/root:/bin/bash\n#bad\nalice:x:1000:1000::/home/alice:/bin/sh\ntoor:x:0:0::/:/bin/sh\n");
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&1000).map(String::as_str), Some("alice"));
        assert_eq!(
            command_line(b"/usr/bin/app\0--flag\0x\0").as_deref(),
            Some("/usr/bin/app --flag x")
        );
        assert_eq!(command_line(b""), None);
        assert_eq!(command_line(b"\0\0"), None);
    }

    #[test]
    fn program_names_never_carry_arguments() {
        let cases: [(&str, &[u8], &str); 8] = [
            ("sh", b"sh\0-c\0sleep 30\0secret\0", "sh"),
            (
                "postgres",
                b"/usr/bin/postgres\0--password=secret\0",
                "postgres",
            ),
            // comm cut at 15 bytes: argv[0]'s base name is the whole name.
            (
                "memprof-cli-nam",
                b"/tmp/dir/memprof-cli-named-sleeper\x0030\0",
                "memprof-cli-named-sleeper",
            ),
            // A rewritten argv[0] that does not extend comm is ignored.
            ("sleep", b"--db-password=secret\0", "sleep"),
            (
                "nginx",
                b"nginx: master process /usr/sbin/nginx -c /etc/x\0",
                "nginx",
            ),
            (
                "a-long-program-",
                b"a-long-program-name --token secret\0",
                "a-long-program-name",
            ),
            (
                "a-long-program-",
                b"/bin/other-program\0",
                "a-long-program-",
            ),
            ("", b"/usr/bin/app\0--flag\0", "app"),
        ];
        for (comm, cmdline, name) in cases {
            assert_eq!(program_name(comm, cmdline), name, "{comm:?} {cmdline:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_passwd(&String::from_utf8_lossy(&bytes));
            let _ = command_line(&bytes);
            let name = program_name("a-long-program-", &bytes);
            prop_assert!(!name.contains(char::is_whitespace), "{name:?}");
        }
    }
}
