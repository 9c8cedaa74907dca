//! `memprof`: the host view, processes by PSS, a process's memory over
//! time and the doctor's findings, for any process; and the readers of
//! what a process left behind: its dump directory, pprof and folded
//! profiles (memprof's own, Go's, jemalloc_pprof's), as reports,
//! flamegraphs and diffs.
//!
//! Built with the `cli` feature. Arguments are parsed by clap. Errors (a
//! bad flag, a process that does not exist, a file that is not a profile)
//! are one line on stderr starting `memprof: ` and exit code 2; nothing
//! panics.

mod diff;
mod doctor;
mod dumps;
mod flamegraph;
mod host;
mod report;
mod source;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use memprof::export::profile_file::ReadLimits;
use memprof::Kind;
use serde::Serialize;

/// The commands and their flags, shown by `--help` after clap's list.
const USAGE: &str = "\
Commands in full:
  memprof host [--json]
  memprof oom [--json]
  memprof top [-n N] [--json]
  memprof watch <pid> [--interval S] [--count N] [--json]
  memprof doctor [--pid P] [--interval S] [--json]
  memprof dumps DIR [--json]
  memprof report FILE|DUMPDIR [--top N] [--kind K] [--json]
  memprof flamegraph FILE|DUMPDIR -o OUT.svg [--base OTHER] [--kind K]
  memprof diff A B [--top N] [--kind K] [--json]

FILE is a pprof profile (.pb.gz or .pb: memprof's, Go's, jemalloc_pprof's),
folded stacks (.folded), or a dump directory (DIR/<id>/ with summary.json,
heap.pb.gz, heap.folded).

Exit codes: 0 success, 1 the process went away while watched, 2 bad usage,
a process that cannot be read, or a file that is not a profile.";

/// memprof: memory of this host, its cgroups and its processes, and the
/// profiles and dumps memprof leaves behind.
#[derive(Parser)]
#[command(name = "memprof", version, after_help = USAGE, subcommand_required = true)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The host (meminfo, pressure, vm settings, THP, free blocks by zone)
    /// and this shell's memory cgroup.
    Host,
    /// The OOM kills in the kernel log (/dev/kmsg: when, the victim, its
    /// RSS, the constraint and the memory cgroup), or why the log cannot be
    /// read, with the host's and this shell's cgroup's oom_kill counters.
    Oom,
    /// The N processes using the most memory by PSS, with swap, USS, PSS
    /// and RSS, like smem -tkp.
    Top {
        /// How many processes.
        #[arg(short = 'n', long = "limit", value_name = "N", default_value = "20", value_parser = positive_count)]
        limit: u64,
    },
    /// RSS, PSS and swap of a process every S seconds, with its growth per
    /// minute, N times (default: until interrupted). --json prints one JSON
    /// object per line.
    Watch {
        /// The process id.
        #[arg(value_parser = pid)]
        pid: u32,
        /// Seconds between readings.
        #[arg(long, value_name = "S", default_value = "1", value_parser = seconds_above_zero)]
        interval: Duration,
        /// How many readings, then stop.
        #[arg(long, value_name = "N", value_parser = positive_count)]
        count: Option<u64>,
    },
    /// Findings of the doctor's rules on the host and cgroup (and process
    /// P), from two readings S seconds apart so rate rules work. Allocator
    /// rules need the process's own jemalloc: they run in-process (GET
    /// /debug/memprof/doctor), not here.
    Doctor {
        /// A process to examine too.
        #[arg(long, value_name = "P", value_parser = pid)]
        pid: Option<u32>,
        /// Seconds between the two readings (0: one reading).
        #[arg(long, value_name = "S", default_value = "1", value_parser = seconds)]
        interval: Duration,
    },
    /// The dumps in a dump directory (MEMPROF_DUMP_DIR), newest first: id,
    /// trigger, time, pid, heap, RSS, cgroup usage and limit. An entry that
    /// cannot be read is listed as unreadable, with why.
    Dumps {
        /// The dump directory.
        dir: PathBuf,
    },
    /// A profile or a dump: the dump's summary (trigger, time, process,
    /// cgroup, the doctor's findings), its top stacks and the leak
    /// candidates the summary holds.
    Report {
        /// A .pb.gz, .pb or .folded file, or a dump directory.
        file: PathBuf,
        /// How many stacks to show.
        #[arg(long, value_name = "N", default_value = "10", value_parser = positive_count)]
        top: u64,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// An SVG flamegraph of a profile or a dump, or with --base a
    /// differential one (red grew, blue shrank) from OTHER to FILE.
    Flamegraph {
        /// A .pb.gz, .pb or .folded file, or a dump directory.
        file: PathBuf,
        /// Where to write the SVG (`-` for stdout).
        #[arg(short = 'o', long = "output", value_name = "OUT.svg")]
        output: PathBuf,
        /// The older profile to compare with.
        #[arg(long, value_name = "OTHER")]
        base: Option<PathBuf>,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// What changed from profile A to profile B, stack by stack: grown and
    /// new stacks first (largest growth first), then shrunk and gone ones.
    Diff {
        /// The older profile or dump.
        a: PathBuf,
        /// The newer profile or dump.
        b: PathBuf,
        /// How many stacks to show (text only; --json lists all).
        #[arg(long, value_name = "N", default_value = "20", value_parser = positive_count)]
        top: u64,
        #[command(flatten)]
        profile: ProfileArgs,
    },
}

/// What the profile readers share.
#[derive(clap::Args)]
struct ProfileArgs {
    /// Which value: inuse_space, inuse_objects, alloc_space or
    /// alloc_objects.
    #[arg(long, value_name = "K", default_value = "inuse_space")]
    kind: Kind,
    /// The most a profile may decompress to, and the most memory its tables
    /// may take (e.g. 512MiB, the default).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    max_size: Option<u64>,
}

impl ProfileArgs {
    fn limits(&self) -> ReadLimits {
        self.max_size
            .map_or_else(ReadLimits::default, ReadLimits::with_max_bytes)
    }
}

/// A command-line error: printed after `memprof: `, exit code 2.
pub(crate) struct Failure(pub(crate) String);

pub(crate) type Result<T> = std::result::Result<T, Failure>;

pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Failure(message.into()))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let json = cli.json;
    let outcome = match cli.command {
        Command::Host => host::host(json),
        Command::Oom => host::oom(json),
        Command::Top { limit } => host::top(usize::try_from(limit).unwrap_or(usize::MAX), json),
        Command::Watch {
            pid,
            interval,
            count,
        } => watch::watch(pid, interval, count, json),
        Command::Doctor { pid, interval } => doctor::doctor(pid, interval, json),
        Command::Dumps { dir } => dumps::dumps(&dir, json),
        Command::Report { file, top, profile } => report::report(
            &file,
            usize::try_from(top).unwrap_or(usize::MAX),
            profile.kind,
            &profile.limits(),
            json,
        ),
        Command::Flamegraph {
            file,
            output,
            base,
            profile,
        } => flamegraph::flamegraph(
            &file,
            base.as_deref(),
            &output,
            profile.kind,
            &profile.limits(),
        ),
        Command::Diff { a, b, top, profile } => diff::diff(
            &a,
            &b,
            usize::try_from(top).unwrap_or(usize::MAX),
            profile.kind,
            &profile.limits(),
            json,
        ),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("memprof: {message}");
            ExitCode::from(2)
        }
    }
}

/// Help and version go to stdout with exit code 0; anything else clap
/// refused is one `memprof: ` line with its usage, exit code 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = print(&err.render().to_string());
            ExitCode::SUCCESS
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!(
                "memprof: a command is needed: host, oom, top, watch, doctor, dumps, report, \
                 flamegraph or diff\nTry 'memprof --help'."
            );
            ExitCode::from(2)
        }
        _ => {
            let text = err.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("memprof: {}", text.trim_end());
            eprintln!();
            ExitCode::from(2)
        }
    }
}

fn positive_count(text: &str) -> std::result::Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("a whole number above 0, not {text:?}")),
    }
}

fn pid(text: &str) -> std::result::Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a process id")),
    }
}

fn seconds(text: &str) -> std::result::Result<Duration, String> {
    parse_seconds(text, true)
}

fn seconds_above_zero(text: &str) -> std::result::Result<Duration, String> {
    parse_seconds(text, false)
}

fn parse_seconds(text: &str, zero_ok: bool) -> std::result::Result<Duration, String> {
    let value: f64 = text.parse().map_err(|_| format!("seconds, not {text:?}"))?;
    if !value.is_finite() || value < 0.0 || (value == 0.0 && !zero_ok) || value > 86_400.0 {
        return Err(format!(
            "seconds between {} and 86400, not {text}",
            if zero_ok { "0" } else { "0 (exclusive)" }
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

fn size(text: &str) -> std::result::Result<u64, String> {
    match memprof_size::parse_size(text) {
        Ok(size) if size.bytes > 0 => Ok(size.bytes),
        Ok(_) => Err("a size above 0".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends the program quietly.
pub(crate) fn print(text: &str) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<ExitCode> {
    match serde_json::to_string_pretty(value) {
        Ok(text) => print(&(text + "\n")),
        Err(err) => fail(format!("cannot write JSON: {err}")),
    }
}
