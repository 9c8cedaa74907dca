//! The watcher thread, `memprof-dumps`: once a second it reads the heap
//! estimate (the stack table's counters, lock-free), the RSS, and the
//! memory cgroup's usage and limit (or the host's MemAvailable), feeds the
//! `peak` and `limit` rules, and writes the dumps they ask for; it also
//! writes the dump the opt-in signal asked for. Nothing here touches the
//! allocation path, and the thread samples none of its own allocations.
//!
//! `memprof::serve` and `memprof::http::router` start it through
//! [`ensure_started`] when a dump directory is set; [`start`] starts it
//! from code. It reads the settings at each tick, so a directory set later
//! in code is picked up.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::trigger::{LimitReading, LimitWatch, PeakWatch, Trigger};
use crate::config::DumpSettings;
use crate::history::PeakRule;
use crate::host::{CgroupMemory, CgroupView, Limit, Meminfo, Pid, ProcStatus};

/// The time between two ticks.
const TICK: Duration = Duration::from_secs(1);

/// Whether the thread runs.
static STARTED: Mutex<bool> = Mutex::new(false);
/// Set by the signal handler, read and cleared by the watcher.
static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// The signal whose handler is installed (0: none).
static HANDLED_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether the exit hook is registered.
static EXIT_HOOK: AtomicBool = AtomicBool::new(false);

/// The process that registered the exit hook: the only one it dumps for.
static EXIT_HOOK_PID: AtomicU32 = AtomicU32::new(0);

/// Starts the watcher unless it runs. It idles (reading only its settings)
/// while no directory is set.
///
/// # Errors
///
/// The thread could not be spawned.
pub fn start() -> std::io::Result<()> {
    let mut started = super::lock(&STARTED);
    let settings = crate::config::dump::current();
    if settings.dir.is_some() {
        install_signal(&settings);
        if settings.on_exit {
            register_exit_hook();
        }
    }
    if *started {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("memprof-dumps".to_owned())
        .spawn(run)?;
    *started = true;
    Ok(())
}

/// Starts the watcher if a dump directory is set (`MEMPROF_DUMP_DIR` or
/// code) and it does not run yet; `Ok(false)` when no directory is set.
///
/// # Errors
///
/// The thread could not be spawned.
pub fn ensure_started() -> std::io::Result<bool> {
    if crate::config::dump::current().dir.is_none() {
        return Ok(false);
    }
    start().map(|()| true)
}

fn run() {
    crate::set_thread_rate(Some(0));
    let mut peak = PeakWatch::default();
    let mut limit = LimitWatch::default();
    loop {
        let settings = crate::config::dump::current();
        if settings.dir.is_some() {
            install_signal(&settings);
            if settings.on_exit {
                register_exit_hook();
            }
            crate::thread_state::unsampled(|| tick(&settings, &mut peak, &mut limit));
        }
        std::thread::sleep(TICK);
    }
}

/// One look at the readings; writes what the rules ask for. A failure to
/// write is counted and shown by [`super::write_dump`].
fn tick(settings: &DumpSettings, peak: &mut PeakWatch, limit: &mut LimitWatch) {
    if super::prepared_dir(settings).is_err() {
        return;
    }
    if SIGNALLED.swap(false, Ordering::Relaxed) {
        let name = match HANDLED_SIGNAL.load(Ordering::Relaxed) {
            libc::SIGUSR1 => "SIGUSR1",
            _ => "SIGUSR2",
        };
        let _ = super::write_dump(Trigger::Request, &format!("{name} received"));
    }
    if let Some(reading) = limit_reading() {
        if let Some((_, detail)) = limit.observe(&settings.limit_thresholds_percent, reading) {
            let _ = super::write_dump(Trigger::Limit, &detail);
            return;
        }
    }
    let rule = PeakRule {
        margin: settings.peak_margin,
        floor_bytes: settings.peak_floor_bytes as f64,
    };
    let heap = crate::history::heap_figures().inuse_bytes;
    let rss = ProcStatus::read("/", Pid::Current)
        .ok()
        .and_then(|s| s.vm_rss_bytes);
    if let Some(detail) = peak.observe(rule, settings.min_interval, Instant::now(), heap, rss) {
        let _ = super::write_dump(Trigger::Peak, &detail);
    }
}

/// The memory cgroup's working set (usage less inactive file pages, what
/// the kernel cannot reclaim easily; usage where that is not read) against
/// its limit, or, with no cgroup limit, the host's memory in use
/// (MemTotal less MemAvailable) against MemTotal.
pub(crate) fn limit_reading() -> Option<LimitReading> {
    if let Ok(view) = CgroupView::read("/", Pid::Current) {
        let (usage, working_set, limit, source) = match &view.memory {
            CgroupMemory::V1(m) => (
                m.usage_bytes.value(),
                m.working_set_bytes.value(),
                m.limit_bytes.value(),
                "cgroup v1",
            ),
            CgroupMemory::V2(m) => (
                m.current_bytes.value(),
                m.working_set_bytes.value(),
                m.max_bytes.value(),
                "cgroup v2",
            ),
        };
        if let (Some(Limit::Bytes(limit)), Some(used)) = (limit, working_set.or(usage)) {
            return Some(LimitReading {
                used_bytes: *used,
                limit_bytes: *limit,
                source,
            });
        }
    }
    let meminfo = Meminfo::read("/").ok()?;
    let total = meminfo.mem_total_bytes?;
    let available = meminfo.mem_available_bytes?;
    Some(LimitReading {
        used_bytes: total.saturating_sub(available),
        limit_bytes: total,
        source: "host MemAvailable",
    })
}

/// The signal handler: sets a flag, nothing else (async-signal-safe).
extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Installs the handler of the opt-in signal, once per signal chosen.
fn install_signal(settings: &DumpSettings) {
    let Some(signal) = settings.signal else {
        return;
    };
    let number = signal.number();
    if HANDLED_SIGNAL.swap(number, Ordering::Relaxed) == number {
        return;
    }
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(number, &action, std::ptr::null_mut()) != 0 {
            eprintln!(
                "memprof: dumps: cannot handle signal {number}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The `exit` dump, run by libc's `exit` after `main` returns or at
/// `std::process::exit`. A panic cannot cross into C: it is caught.
///
/// A child forked from the process inherits the hook but not the request:
/// it writes nothing. (Its copy of the dump locks may also have been taken
/// mid-dump by a parent thread that does not exist in the child.)
extern "C" fn at_exit() {
    if std::process::id() != EXIT_HOOK_PID.load(Ordering::Relaxed) {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        let settings = crate::config::dump::current();
        if settings.on_exit && settings.dir.is_some() {
            if let Err(e) = super::write_dump(Trigger::Exit, "the process exited normally") {
                eprintln!("memprof: exit dump: {e}");
            }
        }
    });
}

/// Registers the exit hook once.
pub(crate) fn register_exit_hook() {
    if EXIT_HOOK.swap(true, Ordering::Relaxed) {
        return;
    }
    EXIT_HOOK_PID.store(std::process::id(), Ordering::Relaxed);
    // SAFETY: `at_exit` is an `extern "C" fn()` with no preconditions that
    // lives for the whole program.
    if unsafe { libc::atexit(at_exit) } != 0 {
        eprintln!("memprof: dumps: cannot register the exit dump");
    }
}
