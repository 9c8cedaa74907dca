//! The kernel's own record of OOM kills, read from `/dev/kmsg`.
//!
//! The cgroup and vmstat counters say *that* the OOM killer ran; the kernel
//! log says *whom* it killed, how big the victim was and in which memory
//! cgroup. `mm/oom_kill.c` writes two lines per kill:
//!
//! ```text
//! oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,task_memcg=/app,task=leaky,pid=4242,uid=0
//! Memory cgroup out of memory: Killed process 4242 (leaky) total-vm:2210240kB, anon-rss:204012kB, file-rss:1536kB, shmem-rss:0kB, UID:0 pgtables:512kB oom_score_adj:0
//! ```
//!
//! The summary (`dump_oom_summary`, since Linux 4.19) comes first; the
//! "Killed process" line (`__oom_kill_process`) follows and is the one a kill
//! is counted from. They are paired by pid; a kill whose summary is missing
//! (an older kernel, or the summary overwritten in the ring) has no
//! constraint or memcg. A global OOM writes `global_oom` where a memcg OOM
//! writes `oom_memcg=`.
//!
//! `/dev/kmsg` gives one record per `read`: `prio,seq,usec,flags;message`,
//! then dictionary lines that start with a space (`SUBSYSTEM=...`), which
//! are skipped. The timestamp is microseconds of the kernel's local clock
//! since boot, which tracks `CLOCK_MONOTONIC`; the wall-clock time of a kill
//! is derived from the two clocks read together. In a container the device
//! is usually refused (`EPERM`, `kernel.dmesg_restrict`) or absent: the
//! reading is then unavailable with that reason, and the cgroup
//! (`memory.events`, `memory.oom_control`) and `/proc/vmstat` `oom_kill`
//! counters remain the only record.
//!
//! Memory is bounded: the last [`MAX_KILLS`] kills are kept, lines longer
//! than [`MAX_RECORD_BYTES`] are cut, and a malformed line is counted and
//! skipped, never an error.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::{ParseError, ReadError};
use super::util;

/// How many kills a reading keeps (the most recent ones).
pub const MAX_KILLS: usize = 64;

/// The longest record read from `/dev/kmsg` (the kernel's
/// `CONSOLE_EXT_LOG_MAX`); longer lines in a saved log are cut to this.
pub const MAX_RECORD_BYTES: usize = 8192;

/// How many summaries (`oom-kill:` lines) wait for their "Killed process"
/// line at most.
const MAX_PENDING_SUMMARIES: usize = 16;

/// How many records one reading looks at at most, so a log flooded while it
/// is read still ends.
const MAX_RECORDS: u64 = 1 << 20;

/// One process the kernel's OOM killer killed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OomKill {
    /// When, in microseconds since boot (the record's timestamp).
    pub boot_usec: u64,
    /// When, in seconds since the Unix epoch, derived from the monotonic and
    /// real-time clocks at the time of reading; `None` for a log read
    /// without the clocks.
    pub unix_seconds: Option<f64>,
    /// How long before the reading the kill was, in seconds.
    pub age_seconds: Option<f64>,
    /// The victim's pid.
    pub pid: u32,
    /// The victim's command name (`comm`, at most 15 bytes).
    pub name: String,
    /// The victim's address space (`total-vm`).
    pub total_vm_bytes: u64,
    /// Its anonymous resident memory (`anon-rss`): usually the heap.
    pub anon_rss_bytes: u64,
    /// Its file-backed resident memory (`file-rss`).
    pub file_rss_bytes: u64,
    /// Its shared-memory resident pages (`shmem-rss`).
    pub shmem_rss_bytes: u64,
    /// The victim's uid (since Linux 5.0 in this line).
    pub uid: Option<u32>,
    /// Its page tables (`pgtables`, since Linux 5.9).
    pub page_tables_bytes: Option<u64>,
    /// Its `oom_score_adj` (since Linux 5.9 in this line).
    pub oom_score_adj: Option<i32>,
    /// What limited the allocation: `CONSTRAINT_NONE` (the machine ran out),
    /// `CONSTRAINT_MEMCG` (a cgroup limit), `CONSTRAINT_CPUSET`,
    /// `CONSTRAINT_MEMORY_POLICY`; `None` when the summary was not found.
    pub constraint: Option<String>,
    /// The memory cgroup whose limit was hit (`oom_memcg`); `None` for a
    /// global OOM or without the summary.
    pub oom_memcg: Option<String>,
    /// The victim's memory cgroup (`task_memcg`).
    pub task_memcg: Option<String>,
}

impl OomKill {
    /// The cgroup the kill is about: the one whose limit was hit, or else
    /// the victim's.
    pub fn memcg(&self) -> Option<&str> {
        self.oom_memcg.as_deref().or(self.task_memcg.as_deref())
    }

    /// The victim's resident memory: anon + file + shmem.
    pub fn rss_bytes(&self) -> u64 {
        self.anon_rss_bytes
            .saturating_add(self.file_rss_bytes)
            .saturating_add(self.shmem_rss_bytes)
    }
}

/// The OOM kills in the kernel log, the most recent [`MAX_KILLS`], oldest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OomLog {
    /// The kills, oldest first.
    pub kills: Vec<OomKill>,
    /// Kills found but not kept (older than the last [`MAX_KILLS`]).
    pub dropped_kills: u64,
    /// Records read.
    pub records: u64,
    /// Lines that were not a record, and OOM records that did not parse
    /// (skipped).
    pub malformed_records: u64,
}

/// The clocks at the time of reading, to turn a record's boot-relative
/// timestamp into an age and a wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogClock {
    /// `CLOCK_MONOTONIC`, in microseconds.
    pub monotonic_usec: u64,
    /// Seconds since the Unix epoch.
    pub unix_seconds: f64,
}

impl LogClock {
    /// The clocks now.
    pub fn now() -> LogClock {
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        LogClock {
            monotonic_usec: crate::os::monotonic_nanos() / 1000,
            unix_seconds,
        }
    }
}

/// A summary line waiting for its kill.
#[derive(Debug, Clone, Default, PartialEq)]
struct Summary {
    pid: Option<u32>,
    constraint: Option<String>,
    oom_memcg: Option<String>,
    task_memcg: Option<String>,
}

/// Builds an [`OomLog`] from records fed one at a time.
#[derive(Debug)]
pub struct OomLogParser {
    clock: Option<LogClock>,
    log: OomLog,
    kills: VecDeque<OomKill>,
    pending: VecDeque<Summary>,
}

impl OomLogParser {
    /// A parser that dates kills against `clock` (none: no age or wall time).
    pub fn new(clock: Option<LogClock>) -> OomLogParser {
        OomLogParser {
            clock,
            log: OomLog::default(),
            kills: VecDeque::new(),
            pending: VecDeque::new(),
        }
    }

    /// Takes one line of the log: a record (`prio,seq,usec,flags;message`)
    /// or a dictionary line (starts with a space; skipped). A record whose
    /// message is about an OOM kill but does not parse is counted in
    /// `malformed_records`.
    pub fn line(&mut self, line: &str) {
        if line.starts_with(' ') || line.is_empty() {
            return;
        }
        self.log.records = self.log.records.saturating_add(1);
        let Some((header, message)) = line.split_once(';') else {
            self.log.malformed_records = self.log.malformed_records.saturating_add(1);
            return;
        };
        let Some(usec) = header.split(',').nth(2).and_then(|t| t.parse::<u64>().ok()) else {
            self.log.malformed_records = self.log.malformed_records.saturating_add(1);
            return;
        };
        if let Some(rest) = message.strip_prefix("oom-kill:") {
            self.summary(rest);
        } else if let Some(at) = message.find("Killed process ") {
            match parse_killed(&message[at + "Killed process ".len()..]) {
                Some(kill) => self.kill(usec, kill),
                None => self.log.malformed_records = self.log.malformed_records.saturating_add(1),
            }
        }
    }

    fn summary(&mut self, text: &str) {
        let summary = parse_summary(text);
        if summary.pid.is_none() {
            self.log.malformed_records = self.log.malformed_records.saturating_add(1);
            return;
        }
        if self.pending.len() == MAX_PENDING_SUMMARIES {
            self.pending.pop_front();
        }
        self.pending.push_back(summary);
    }

    fn kill(&mut self, usec: u64, mut kill: OomKill) {
        kill.boot_usec = usec;
        if let Some(clock) = self.clock {
            let age = clock.monotonic_usec.saturating_sub(usec) as f64 / 1e6;
            kill.age_seconds = Some(age);
            kill.unix_seconds = Some(clock.unix_seconds - age);
        }
        if let Some(at) = self.pending.iter().rposition(|s| s.pid == Some(kill.pid)) {
            if let Some(summary) = self.pending.remove(at) {
                kill.constraint = summary.constraint;
                kill.oom_memcg = summary.oom_memcg;
                kill.task_memcg = summary.task_memcg;
            }
        }
        if self.kills.len() == MAX_KILLS {
            self.kills.pop_front();
            self.log.dropped_kills = self.log.dropped_kills.saturating_add(1);
        }
        self.kills.push_back(kill);
    }

    /// The kills found so far.
    pub fn finish(mut self) -> OomLog {
        self.log.kills = self.kills.into_iter().collect();
        self.log
    }
}

/// Parses the text after `Killed process `:
/// `PID (NAME) total-vm:NkB, anon-rss:NkB, file-rss:NkB, shmem-rss:NkB, UID:N pgtables:NkB oom_score_adj:N`.
/// The name may hold spaces and parentheses; it ends at the last `) ` before
/// `total-vm:`.
fn parse_killed(text: &str) -> Option<OomKill> {
    let (pid, rest) = text.split_once(" (")?;
    let pid = pid.trim().parse::<u32>().ok()?;
    let at = rest.find(") total-vm:")?;
    let name = rest[..at].to_owned();
    let fields = &rest[at + 2..];
    let mut total_vm = None;
    let mut anon = None;
    let mut file = None;
    let mut shmem = None;
    let mut uid = None;
    let mut page_tables = None;
    let mut score_adj = None;
    for field in fields.split([',', ' ']).filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once(':')?;
        let kib = || value.strip_suffix("kB")?.parse::<u64>().ok().map(util::kib);
        match key {
            "total-vm" => total_vm = Some(kib()?),
            "anon-rss" => anon = Some(kib()?),
            "file-rss" => file = Some(kib()?),
            "shmem-rss" => shmem = Some(kib()?),
            "UID" => uid = Some(value.parse::<u32>().ok()?),
            "pgtables" => page_tables = Some(kib()?),
            "oom_score_adj" => score_adj = Some(value.parse::<i32>().ok()?),
            _ => {}
        }
    }
    Some(OomKill {
        boot_usec: 0,
        unix_seconds: None,
        age_seconds: None,
        pid,
        name,
        total_vm_bytes: total_vm?,
        anon_rss_bytes: anon?,
        file_rss_bytes: file?,
        shmem_rss_bytes: shmem?,
        uid,
        page_tables_bytes: page_tables,
        oom_score_adj: score_adj,
        constraint: None,
        oom_memcg: None,
        task_memcg: None,
    })
}

/// Parses the text after `oom-kill:`: comma-separated `key=value` fields
/// and the bare `global_oom`. A field without `=` continues the previous
/// value (a cgroup path may hold a comma).
fn parse_summary(text: &str) -> Summary {
    let mut summary = Summary::default();
    let mut fields: Vec<(&str, String)> = Vec::new();
    for part in text.split(',') {
        match part.split_once('=') {
            Some((key, value))
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                fields.push((key, value.to_owned()))
            }
            _ if part == "global_oom" => fields.push(("global_oom", String::new())),
            _ => {
                if let Some((_, value)) = fields.last_mut() {
                    value.push(',');
                    value.push_str(part);
                }
            }
        }
    }
    for (key, value) in fields {
        match key {
            "constraint" => summary.constraint = Some(value),
            "oom_memcg" => summary.oom_memcg = Some(value),
            "task_memcg" => summary.task_memcg = Some(value),
            "pid" => summary.pid = value.parse().ok(),
            _ => {}
        }
    }
    summary
}

impl OomLog {
    /// Parses a saved log: one record per line, as `/dev/kmsg` gives them
    /// (`cat /dev/kmsg` writes this). Lines longer than
    /// [`MAX_RECORD_BYTES`] are cut; a last line without its newline is
    /// parsed as far as it goes.
    pub fn parse<R: BufRead>(reader: R, clock: Option<LogClock>) -> Result<OomLog, ParseError> {
        let mut parser = OomLogParser::new(clock);
        let mut lines = LineSplitter::default();
        let mut reader = reader;
        loop {
            let chunk = reader
                .fill_buf()
                .map_err(|err| ParseError::Io(err.kind()))?;
            if chunk.is_empty() {
                break;
            }
            let used = chunk.len();
            lines.feed(chunk, &mut parser);
            reader.consume(used);
        }
        lines.end(&mut parser);
        Ok(parser.finish())
    }

    /// Reads `/dev/kmsg` under `root` (`/` on a live system) without
    /// blocking: every record the kernel still holds, then stops at
    /// `EAGAIN` (or the end of a regular file). Records overwritten while
    /// reading (`EPIPE`) are skipped. Fails when the device cannot be opened
    /// (`EPERM` in most containers, absent in some).
    pub fn read(root: impl AsRef<Path>) -> Result<OomLog, ReadError> {
        use std::os::unix::fs::OpenOptionsExt;

        let path = util::join(root.as_ref(), "/dev/kmsg");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|err| ReadError::io(&path, &err))?;
        let clock = LogClock::now();
        let mut parser = OomLogParser::new(Some(clock));
        let mut lines = LineSplitter::default();
        let mut buf = vec![0u8; MAX_RECORD_BYTES];
        let mut reads = 0u64;
        while reads < MAX_RECORDS {
            reads += 1;
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lines.feed(&buf[..n], &mut parser),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(ReadError::parse(&path, ParseError::Io(err.kind())));
                }
            }
        }
        lines.end(&mut parser);
        Ok(parser.finish())
    }
}

/// Splits bytes into lines for the parser, holding a partial line between
/// chunks (at most [`MAX_RECORD_BYTES`] of it).
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn feed(&mut self, mut bytes: &[u8], parser: &mut OomLogParser) {
        while let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            self.push(&bytes[..at]);
            self.flush(parser);
            bytes = &bytes[at + 1..];
        }
        self.push(bytes);
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_RECORD_BYTES.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn flush(&mut self, parser: &mut OomLogParser) {
        parser.line(&String::from_utf8_lossy(&self.partial));
        self.partial.clear();
    }

    fn end(mut self, parser: &mut OomLogParser) {
        if !self.partial.is_empty() {
            self.flush(parser);
        }
    }
}

#[cfg(test)]
mod tests;
