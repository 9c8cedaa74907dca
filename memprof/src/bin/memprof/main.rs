//! `memprof`: the host view, processes by PSS, a process's memory over
//! time, and the doctor's findings, from the command line.
//!
//! Built with the `cli` feature. Errors (a bad flag, a process that does not
//! exist) are one line on stderr and exit code 2; nothing panics.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memprof::doctor::{self, format_bytes, LiveOptions};
use memprof::host::{
    self, CgroupView, HostView, Pid, ProcStatus, Reading, SmapsRollup, TopProcesses,
};
use serde::Serialize;

const USAGE: &str = "\
memprof: memory of this host, its cgroups and its processes

Usage:
  memprof host [--json]
      The host (meminfo, pressure, vm settings, THP, free blocks by zone)
      and this shell's memory cgroup.
  memprof oom [--json]
      The OOM kills in the kernel log (/dev/kmsg: when, the victim, its
      RSS, the constraint and the memory cgroup), or why the log cannot be
      read, with the host's and this shell's cgroup's oom_kill counters.
  memprof top [-n N] [--json]
      The N processes using the most memory by PSS (default 20), with
      swap, USS, PSS and RSS, like smem -tkp.
  memprof watch <pid> [--interval S] [--count N] [--json]
      RSS, PSS and swap of a process every S seconds (default 1), with its
      growth per minute, N times (default: until interrupted). --json
      prints one JSON object per line.
  memprof doctor [--pid P] [--interval S] [--json]
      Findings of the doctor's rules on the host and cgroup (and process P),
      from two readings S seconds apart (default 1) so rate rules work.
      Allocator rules need the process's own jemalloc: they run in-process
      (GET /debug/memprof/doctor), not here.
  memprof help | --help | -h
  memprof --version

Exit codes: 0 success, 1 the process went away while watched, 2 bad usage
or a process that cannot be read.
";

/// A command-line error: printed with a hint, exit code 2.
struct UsageError(String);

type Result<T> = std::result::Result<T, UsageError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(UsageError(message.into()))
}

#[derive(Debug)]
enum Command {
    Help,
    Version,
    Host,
    Oom,
    Top {
        limit: usize,
    },
    Watch {
        pid: u32,
        interval: Duration,
        count: Option<u64>,
    },
    Doctor {
        pid: Option<u32>,
        interval: Duration,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, json) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(UsageError(message)) => {
            eprintln!("memprof: {message}\nTry 'memprof --help'.");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Help => print(USAGE),
        Command::Version => print(&format!("memprof {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Host => host_command(json),
        Command::Oom => oom_command(json),
        Command::Top { limit } => top_command(limit, json),
        Command::Watch {
            pid,
            interval,
            count,
        } => watch_command(pid, interval, count, json),
        Command::Doctor { pid, interval } => doctor_command(pid, interval, json),
    };
    match outcome {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("memprof: {message}");
            ExitCode::from(2)
        }
    }
}

/// Parses the arguments (without the program name) into a command and
/// whether `--json` was given.
fn parse(args: &[String]) -> Result<(Command, bool)> {
    let mut json = false;
    let mut words = Vec::new();
    let mut options: Vec<(String, Option<String>)> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => return Ok((Command::Help, json)),
            "-V" | "--version" => return Ok((Command::Version, json)),
            "-n" | "--limit" | "--interval" | "--count" | "--pid" => {
                let Some(value) = iter.next() else {
                    return fail(format!("{arg} needs a value"));
                };
                options.push((arg.clone(), Some(value.clone())));
            }
            flag if flag.starts_with('-') && flag.len() > 1 && !is_number(flag) => {
                match flag.split_once('=') {
                    Some((name, value)) => {
                        options.push((name.to_owned(), Some(value.to_owned())));
                    }
                    None => return fail(format!("unknown option {flag}")),
                }
            }
            word => words.push(word.to_owned()),
        }
    }
    let mut words = words.into_iter();
    let Some(sub) = words.next() else {
        return fail("a command is needed: host, oom, top, watch or doctor");
    };
    let mut take = |names: &[&str]| -> Option<String> {
        let at = options
            .iter()
            .position(|(n, _)| names.contains(&n.as_str()))?;
        options.remove(at).1
    };
    let command = match sub.as_str() {
        "help" => Command::Help,
        "host" => Command::Host,
        "oom" => Command::Oom,
        "top" => Command::Top {
            limit: match take(&["-n", "--limit"]) {
                Some(n) => positive(&n, "-n")? as usize,
                None => 20,
            },
        },
        "watch" => {
            let Some(pid) = words.next() else {
                return fail("watch needs a process id: memprof watch <pid>");
            };
            Command::Watch {
                pid: parse_pid(&pid)?,
                interval: match take(&["--interval"]) {
                    Some(s) => seconds(&s, false)?,
                    None => Duration::from_secs(1),
                },
                count: take(&["--count"])
                    .map(|n| positive(&n, "--count"))
                    .transpose()?,
            }
        }
        "doctor" => Command::Doctor {
            pid: take(&["--pid"]).map(|p| parse_pid(&p)).transpose()?,
            interval: match take(&["--interval"]) {
                Some(s) => seconds(&s, true)?,
                None => Duration::from_secs(1),
            },
        },
        other => return fail(format!("unknown command {other:?}")),
    };
    if let Some(extra) = words.next() {
        return fail(format!("unexpected argument {extra:?} for {sub}"));
    }
    if let Some((name, _)) = options.first() {
        return fail(format!("option {name} does not apply to {sub}"));
    }
    Ok((command, json))
}

fn is_number(text: &str) -> bool {
    text.parse::<f64>().is_ok()
}

fn positive(text: &str, name: &str) -> Result<u64> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => fail(format!("{name} wants a whole number above 0, not {text:?}")),
    }
}

fn parse_pid(text: &str) -> Result<u32> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => fail(format!("{text:?} is not a process id")),
    }
}

fn seconds(text: &str, zero_ok: bool) -> Result<Duration> {
    let value: f64 = text
        .parse()
        .map_err(|_| UsageError(format!("--interval wants seconds, not {text:?}")))?;
    if !value.is_finite() || value < 0.0 || (value == 0.0 && !zero_ok) || value > 86_400.0 {
        return fail(format!(
            "--interval wants seconds between {} and 86400, not {text}",
            if zero_ok { "0" } else { "0 (exclusive)" }
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Writes to stdout; a closed pipe (`| head`) ends the program quietly.
fn print(text: &str) -> Result<ExitCode> {
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

fn print_json<T: Serialize>(value: &T) -> Result<ExitCode> {
    match serde_json::to_string_pretty(value) {
        Ok(text) => print(&(text + "\n")),
        Err(err) => fail(format!("cannot write JSON: {err}")),
    }
}

/// Fails with exit code 2 when `pid`'s status cannot be read.
fn require_process(pid: u32) -> Result<ProcStatus> {
    ProcStatus::read("/", Pid::Id(pid))
        .map_err(|err| UsageError(format!("cannot read process {pid}: {err}")))
}

// ---------------------------------------------------------------- host

fn host_command(json: bool) -> Result<ExitCode> {
    let host = HostView::read("/");
    let cgroup: Reading<CgroupView> = CgroupView::read("/", Pid::Current).into();
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            host: &'a HostView,
            cgroup: &'a Reading<CgroupView>,
        }
        return print_json(&Out {
            host: &host,
            cgroup: &cgroup,
        });
    }
    print(&host::render_host(&host, &cgroup))
}

// ---------------------------------------------------------------- oom

fn oom_command(json: bool) -> Result<ExitCode> {
    let host = HostView::read("/");
    let cgroup: Reading<CgroupView> = CgroupView::read("/", Pid::Current).into();
    let report = host::OomReport::from_views(&host, &cgroup);
    if json {
        return print_json(&report);
    }
    print(&host::render_oom(&report))
}

// ---------------------------------------------------------------- top

fn top_command(limit: usize, json: bool) -> Result<ExitCode> {
    // The operator's own terminal: whole command lines, as ps shows them.
    let top = TopProcesses::read_with_command_lines("/", limit)
        .map_err(|err| UsageError(format!("cannot list processes: {err}")))?;
    if json {
        return print_json(&top);
    }
    print(&host::render_top(&top))
}

// ---------------------------------------------------------------- watch

#[derive(Serialize)]
struct WatchSample {
    pid: u32,
    elapsed_seconds: f64,
    rss_bytes: Option<u64>,
    pss_bytes: Option<u64>,
    swap_bytes: Option<u64>,
    anon_bytes: Option<u64>,
    /// RSS growth per minute since the previous sample.
    rss_growth_bytes_per_minute: Option<f64>,
    /// RSS growth per minute since the first sample.
    rss_growth_since_start_bytes_per_minute: Option<f64>,
}

fn watch_command(pid: u32, interval: Duration, count: Option<u64>, json: bool) -> Result<ExitCode> {
    require_process(pid)?;
    let start = Instant::now();
    let mut first: Option<(f64, u64)> = None;
    let mut previous: Option<(f64, u64)> = None;
    let mut taken = 0u64;
    if !json {
        print(&format!(
            "{:>9} {:>10} {:>10} {:>10} {:>14} {:>14}\n",
            "SECONDS", "RSS", "PSS", "SWAP", "RSS/MIN(LAST)", "RSS/MIN(ALL)"
        ))?;
    }
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let status = match ProcStatus::read("/", Pid::Id(pid)) {
            Ok(status) => status,
            Err(err) => {
                eprintln!("memprof: process {pid} went away: {err}");
                return Ok(ExitCode::from(1));
            }
        };
        let smaps = SmapsRollup::read("/", Pid::Id(pid)).ok();
        let rss = status.vm_rss_bytes;
        let rate = |from: Option<(f64, u64)>| {
            let (t0, r0) = from?;
            let r1 = rss?;
            let minutes = (elapsed - t0) / 60.0;
            (minutes > 0.0).then(|| (r1 as f64 - r0 as f64) / minutes)
        };
        let sample = WatchSample {
            pid,
            elapsed_seconds: elapsed,
            rss_bytes: rss,
            pss_bytes: smaps.as_ref().and_then(|s| s.pss_bytes),
            swap_bytes: status
                .vm_swap_bytes
                .or(smaps.as_ref().and_then(|s| s.swap_bytes)),
            anon_bytes: status.rss_anon_bytes,
            rss_growth_bytes_per_minute: rate(previous),
            rss_growth_since_start_bytes_per_minute: rate(first),
        };
        if let Some(r) = rss {
            previous = Some((elapsed, r));
            first = first.or(previous);
        }
        if json {
            match serde_json::to_string(&sample) {
                Ok(line) => print(&(line + "\n"))?,
                Err(err) => return fail(format!("cannot write JSON: {err}")),
            };
        } else {
            let bytes = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), format_bytes);
            let growth = |v: Option<f64>| {
                v.map_or_else(
                    || "-".to_owned(),
                    |g| {
                        let sign = if g < 0.0 { "-" } else { "+" };
                        format!("{sign}{}", format_bytes(g.abs().round() as u64))
                    },
                )
            };
            print(&format!(
                "{:>9.1} {:>10} {:>10} {:>10} {:>14} {:>14}\n",
                elapsed,
                bytes(sample.rss_bytes),
                bytes(sample.pss_bytes),
                bytes(sample.swap_bytes),
                growth(sample.rss_growth_bytes_per_minute),
                growth(sample.rss_growth_since_start_bytes_per_minute)
            ))?;
        }
        taken += 1;
        if count.is_some_and(|c| taken >= c) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(interval);
    }
}

// ---------------------------------------------------------------- doctor

fn doctor_command(pid: Option<u32>, interval: Duration, json: bool) -> Result<ExitCode> {
    if let Some(pid) = pid {
        require_process(pid)?;
    }
    let options = LiveOptions::default()
        .pid(pid.map(Pid::Id))
        .interval(interval)
        .allocator(false);
    let input = doctor::read_live_with(&options);
    let findings = doctor::examine(&input);
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            pid: Option<u32>,
            interval_seconds: f64,
            findings: &'a [doctor::Finding],
        }
        return print_json(&Out {
            pid,
            interval_seconds: interval.as_secs_f64(),
            findings: &findings,
        });
    }
    let subject = match pid {
        Some(pid) => format!("host, cgroup and process {pid}"),
        None => "host and cgroup".to_owned(),
    };
    let readings = if interval.is_zero() {
        "one reading (rate rules need --interval above 0)".to_owned()
    } else {
        format!("two readings {:.1} s apart", interval.as_secs_f64())
    };
    print(&format!(
        "memprof doctor: {subject}, {readings}\n\n{}",
        doctor::render_text(&findings)
    ))
}
