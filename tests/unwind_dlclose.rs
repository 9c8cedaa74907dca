//! Stacks are taken safely through libraries that are loaded, unloaded and
//! loaded again: no walker may read an unloaded library's unwind tables.
//!
//! Two small C libraries, compiled here with `cc`, call back into Rust, and
//! the callback allocates, so samples are taken with the libraries' frames
//! on the stack (and their return addresses left in dead stack slots
//! afterwards, where a walk that strays from the real frames finds them).
//! Each cycle loads `liba` and calls it, unloads it, loads `libb` (of
//! another size) and calls it, and unloads it. With `cover`, a mapping is
//! placed over `liba`'s old range before `libb` is loaded (so `libb` lands
//! elsewhere) and removed before `libb` is called, so `liba`'s old tables
//! are unmapped; without it, `libb` usually lands in `liba`'s old range,
//! where `liba`'s old tables would be read as whatever `libb` holds there.
//!
//! A crash kills the process, so each scenario runs in a child (this test
//! binary again, with `MEMPROF_DLCLOSE_CHILD` set) under each walker
//! (`MEMPROF_UNWIND=framehop`, `fp`, `dwarf`, and the automatic choice), at
//! rate 1 and at the default rate, and must exit cleanly.
//!
//! A second scenario checks that the automatic walker choice does not rule
//! framehop out when its first samples pass through a freshly loaded
//! library.

use std::ffi::{c_int, c_void, CStr, CString};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use memprof::unwinder;
use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

/// Set in a child: `cycles:<libdir>:<cover>`, `auto:<libdir>` or
/// `fork:<libdir>`.
const CHILD: &str = "MEMPROF_DLCLOSE_CHILD";

/// One library: `pads` filler functions change its size and layout; the
/// entry point calls `cb` from a few frames deep, `calls` times.
fn library_source(pads: usize) -> String {
    let mut src = String::from("typedef void (*callback_t)(int);\n");
    for i in 0..pads {
        src += &format!(
            "__attribute__((used, noinline)) static int pad_{i}(int x) {{ return x * {i} + (x >> 3) - {i}; }}\n"
        );
    }
    src += r#"
__attribute__((noinline, noclone)) static int descend(callback_t cb, int depth, int seed) {
    volatile int local[4] = {seed, depth, seed ^ depth, 7};
    if (depth > 0) {
        return descend(cb, depth - 1, seed + 1) + local[0];
    }
    cb(seed);
    return local[2];
}

int lib_entry(callback_t cb, int calls) {
    int sum = 0;
    for (int i = 0; i < calls; i++) {
        sum += descend(cb, 4, i);
    }
    return sum;
}
"#;
    src
}

/// Compiles `liba.so` and `libb.so` once per test process; the directory.
fn libraries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("memprof-dlclose-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the library directory");
        for (name, pads) in [("liba", 3000), ("libb", 40)] {
            let c = dir.join(format!("{name}.c"));
            std::fs::write(&c, library_source(pads)).expect("write the C source");
            let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
                .args(["-shared", "-fPIC", "-O2", "-o"])
                .arg(dir.join(format!("{name}.so")))
                .arg(&c)
                .output()
                .expect("run cc (it links every Rust program, so it is installed)");
            assert!(
                out.status.success(),
                "cc failed for {name}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

/// Runs this binary's child entry with `env`, at most `limit` long; returns
/// its combined output, after checking it exited cleanly.
fn run_child(what: &str, env: &[(&str, &str)], limit: Duration) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, what)
    .env_remove("MEMPROF_UNWIND")
    .env_remove("MEMPROF_RATE")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the child");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} {env:?}: the child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("read the child's output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success(),
        "{what} {env:?}: the child failed ({status:?}, signal {:?}):\n{text}",
        status.signal()
    );
    text
}

/// The dlopen/dlclose cycles under one walker (`None`: the automatic
/// choice), with and without a covering mapping, at rate 1 and the default.
fn cycles_survive(walker: Option<&str>) {
    let dir = libraries().to_str().expect("a UTF-8 temp dir").to_owned();
    for cover in ["all-but-libb", "whole", "plain"] {
        for rate in [Some("1"), None] {
            let mut env = Vec::new();
            if let Some(w) = walker {
                env.push(("MEMPROF_UNWIND", w));
            }
            if let Some(r) = rate {
                env.push(("MEMPROF_RATE", r));
            }
            let what = format!("cycles:{dir}:{cover}");
            let out = run_child(&what, &env, Duration::from_secs(120));
            assert!(out.contains("cycles done"), "{what} {env:?}:\n{out}");
        }
    }
}

#[test]
fn framehop_survives_dlclose_cycles() {
    cycles_survive(Some("framehop"));
}

#[test]
fn frame_pointers_survive_dlclose_cycles() {
    cycles_survive(Some("fp"));
}

#[test]
fn dwarf_survives_dlclose_cycles() {
    cycles_survive(Some("dwarf"));
}

#[test]
fn automatic_choice_survives_dlclose_cycles() {
    cycles_survive(None);
}

/// The automatic choice, with its first samples all taken through a
/// library loaded just before, still settles on a fast walker.
#[test]
fn automatic_choice_verified_through_a_fresh_library_keeps_framehop() {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return;
    }
    let dir = libraries().to_str().expect("a UTF-8 temp dir").to_owned();
    for round in 0..3 {
        let out = run_child(
            &format!("auto:{dir}"),
            &[("MEMPROF_RATE", "0")],
            Duration::from_secs(60),
        );
        assert!(
            out.contains("walker Framehop") || out.contains("walker FramePointers"),
            "round {round}: the automatic choice ruled framehop out:\n{out}"
        );
    }
}

/// Children forked while other threads take stacks and load and unload a
/// library (walks and `dlopen`/`dlclose` take the loader's lock, which glibc
/// does not reset in a child) allocate, take stacks and exit.
#[test]
fn children_forked_while_other_threads_walk_do_not_hang() {
    let dir = libraries().to_str().expect("a UTF-8 temp dir").to_owned();
    for walker in ["framehop", "auto"] {
        let mut env = vec![("MEMPROF_RATE", "1")];
        if walker != "auto" {
            env.push(("MEMPROF_UNWIND", walker));
        }
        let out = run_child(&format!("fork:{dir}"), &env, Duration::from_secs(120));
        assert!(out.contains("forks done: 0 hung"), "{walker}:\n{out}");
    }
}

// ---- the child side ----

/// The callback the libraries call: allocates, so a sample may be taken
/// with the library's frames on the stack.
extern "C" fn allocate_here(seed: c_int) {
    let small = Box::new([seed as u8; 48]);
    let large = vec![seed as u8; 8 << 10];
    black_box((&small, &large));
}

type Entry = unsafe extern "C" fn(extern "C" fn(c_int), c_int) -> c_int;

/// A loaded library and its entry point.
struct Library {
    handle: *mut c_void,
    entry: Entry,
    name: CString,
}

impl Library {
    fn open(dir: &Path, name: &str) -> Library {
        let path = CString::new(dir.join(format!("{name}.so")).to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; the library has no constructors.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "dlopen {name}: {}", dlerror());
        // SAFETY: a live handle and a valid symbol name.
        let sym = unsafe { libc::dlsym(handle, c"lib_entry".as_ptr()) };
        assert!(!sym.is_null(), "dlsym lib_entry: {}", dlerror());
        Library {
            handle,
            // SAFETY: `lib_entry` has exactly this signature (see
            // `library_source`).
            entry: unsafe { core::mem::transmute::<*mut c_void, Entry>(sym) },
            name: CString::new(format!("{name}.so")).unwrap(),
        }
    }

    fn call(&self, calls: c_int) {
        // SAFETY: the library is loaded; the callback matches.
        black_box(unsafe { (self.entry)(allocate_here, calls) });
    }

    /// The page range the library is mapped at.
    fn range(&self) -> (usize, usize) {
        loaded_range(&self.name).expect("the loaded library is listed")
    }

    fn close(self) {
        // SAFETY: a handle from dlopen, closed once; nothing of the library
        // is used afterwards.
        let rc = unsafe { libc::dlclose(self.handle) };
        assert_eq!(rc, 0, "dlclose: {}", dlerror());
    }
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a valid C string.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        String::new()
    } else {
        // SAFETY: non-null, NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The page range of the loaded object whose name ends in `name`.
fn loaded_range(name: &CStr) -> Option<(usize, usize)> {
    struct Find<'a> {
        name: &'a [u8],
        range: Option<(usize, usize)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid `info` for the call; `data` is
        // the `Find` below.
        unsafe {
            let find = &mut *(data as *mut Find);
            let info = &*info;
            if info.dlpi_name.is_null()
                || !CStr::from_ptr(info.dlpi_name)
                    .to_bytes()
                    .ends_with(find.name)
            {
                return 0;
            }
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            let loads = headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
            let (Some(lo), Some(hi)) = (
                loads.clone().map(|h| h.p_vaddr).min(),
                loads.map(|h| h.p_vaddr + h.p_memsz).max(),
            ) else {
                return 0;
            };
            let base = info.dlpi_addr as usize;
            find.range = Some((
                (base + lo as usize) & !0xfff,
                (base + hi as usize + 0xfff) & !0xfff,
            ));
            1
        }
    }
    let mut find = Find {
        name: name.to_bytes(),
        range: None,
    };
    // SAFETY: `each` only writes through `data`, which is `find`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut find as *mut Find as *mut c_void) };
    find.range
}

/// What is mapped over `liba`'s old range while `libb` is loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cover {
    /// Nothing: `libb` may land anywhere in it.
    Plain,
    /// All of it, so `libb` lands elsewhere; removed before `libb` is
    /// called, leaving the range unmapped.
    Whole,
    /// All but a gap at its start just big enough for `libb`, which lands
    /// at `liba`'s old base; removed before `libb` is called, so `libb`'s
    /// code lies where `liba`'s code was and `liba`'s old unwind tables
    /// (beyond `libb`'s end) are unmapped.
    AllButLibb,
}

impl Cover {
    fn parse(s: &str) -> Cover {
        match s {
            "plain" => Cover::Plain,
            "whole" => Cover::Whole,
            "all-but-libb" => Cover::AllButLibb,
            other => panic!("cover {other:?}"),
        }
    }
}

/// Maps `[lo, hi)` inaccessible if nothing is mapped there; the mapping.
fn map_over(lo: usize, hi: usize) -> Option<(*mut c_void, usize)> {
    if hi <= lo {
        return None;
    }
    // SAFETY: an anonymous mapping; NOREPLACE refuses to touch anything
    // already mapped in the range.
    let p = unsafe {
        libc::mmap(
            lo as *mut c_void,
            hi - lo,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED && p as usize == lo).then_some((p, hi - lo))
}

fn cycles(dir: &Path, cover: Cover) {
    let libb_len = {
        let b = Library::open(dir, "libb");
        let (lo, hi) = b.range();
        b.close();
        hi - lo
    };
    let started = Instant::now();
    let (mut cycles, mut covered, mut at_old_base) = (0, 0, 0);
    while cycles < 100 && started.elapsed() < Duration::from_secs(3) {
        let a = Library::open(dir, "liba");
        a.call(2500);
        let (lo, hi) = a.range();
        a.close();
        let mapping = match cover {
            Cover::Plain => None,
            Cover::Whole => map_over(lo, hi),
            Cover::AllButLibb => map_over(lo + libb_len, hi),
        };
        let b = Library::open(dir, "libb");
        at_old_base += usize::from(b.range().0 == lo);
        if let Some((p, len)) = mapping {
            // SAFETY: the mapping made above, unmapped once.
            unsafe { libc::munmap(p, len) };
            covered += 1;
        }
        b.call(500);
        b.close();
        cycles += 1;
    }
    println!(
        "cycles done: {cycles} cycles, {covered} covered, libb at liba's old base {at_old_base} \
         times, walker {:?}, {:?}",
        unwinder(),
        memprof::internals::framehop_counters()
    );
}

fn auto_through_a_fresh_library(dir: &Path) {
    // A few samples first (fewer than the check takes), so the walkers have
    // seen the objects loaded before the library.
    memprof::set_thread_rate(Some(1));
    for i in 0..8u8 {
        black_box(Box::new([i; 48]));
    }
    memprof::set_thread_rate(None);
    let a = Library::open(dir, "liba");
    memprof::set_thread_rate(Some(1));
    a.call(200);
    memprof::set_thread_rate(None);
    println!(
        "walker {:?}, {:?}",
        unwinder(),
        memprof::internals::framehop_counters()
    );
    a.close();
}

/// Forks while three threads allocate (every allocation a sample) and a
/// fourth loads, calls and unloads `liba` over and over (so walks keep
/// meeting frames without rules, and the module list keeps being rebuilt,
/// both with the loader's lock held); each child allocates too and exits.
/// Counts children that did not finish.
fn forks_while_walking(dir: &Path) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static STOP: AtomicBool = AtomicBool::new(false);
    let walkers: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                while !STOP.load(Ordering::Relaxed) {
                    for i in 0..64u8 {
                        black_box(Box::new([i; 48]));
                    }
                }
            })
        })
        .collect();
    let dir = dir.to_owned();
    let loader = std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            let a = Library::open(&dir, "liba");
            a.call(20);
            a.close();
        }
    });
    let (mut forks, mut hung) = (0, 0);
    let started = Instant::now();
    while forks < 200 && started.elapsed() < Duration::from_secs(6) {
        // SAFETY: the child only allocates and frees through the global
        // allocator (whose locks memprof's fork handlers cover), then
        // leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for i in 0..32u8 {
                black_box(Box::new([i; 48]));
            }
            // SAFETY: ends the child without running the harness's exit.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork failed");
        forks += 1;
        let waited = Instant::now();
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` a valid out-pointer.
        while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
            if waited.elapsed() > Duration::from_secs(5) {
                hung += 1;
                // SAFETY: our child, stuck; reaped right after.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    STOP.store(true, Ordering::Relaxed);
    for w in walkers {
        w.join().expect("a walking thread");
    }
    loader.join().expect("the loading thread");
    println!(
        "forks done: {hung} hung of {forks}, walker {:?}",
        unwinder()
    );
}

#[test]
#[ignore = "the child side of the tests above"]
fn child() {
    let Ok(what) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = what.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("cycles"), Some(dir), Some(cover)) => cycles(Path::new(dir), Cover::parse(cover)),
        (Some("auto"), Some(dir), None) => auto_through_a_fresh_library(Path::new(dir)),
        (Some("fork"), Some(dir), None) => forks_while_walking(Path::new(dir)),
        _ => panic!("{CHILD}={what}: not a scenario"),
    }
}
