//! A child forked while no thread symbolizes names frames as the parent
//! does: memprof's fork handlers take the symbol cache's lock around
//! `fork()` and must release it on both sides. (A child forked while
//! another thread holds it is covered by the library's unit tests.)

use std::time::{Duration, Instant};

use memprof::config::MAX_FRAMES;
use memprof::internals::capture_with;
use memprof::internals::resolve;
use memprof::Unwinder;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

#[inline(never)]
fn a_return_address_in_this_test() -> usize {
    let mut buf = [0usize; MAX_FRAMES];
    let n = capture_with(Unwinder::Dwarf, &mut buf);
    // The first frame this test owns: the caller of this function.
    buf[..n]
        .iter()
        .copied()
        .find(|&a| {
            resolve(a)
                .iter()
                .any(|f| f.function.contains("forked_child"))
        })
        .expect("the test's own frame is on the stack")
}

#[test]
fn a_forked_child_symbolizes_and_the_parent_goes_on() {
    let addr = a_return_address_in_this_test();
    let name = resolve(addr)[0].function.clone();
    let unresolved = unresolved_until_the_child();
    // SAFETY: the child only symbolizes and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let same = resolve(addr)[0].function == name;
        // Fresh addresses too, which the cache does not hold yet.
        let fresh = unresolved.iter().any(|&a| {
            resolve(a)
                .iter()
                .any(|f| f.function.contains("unresolved_until_the_child"))
        });
        // SAFETY: ends the child without running the harness's exit.
        unsafe { libc::_exit(if same && fresh { 0 } else { 3 }) };
    }
    let start = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child; `status` a valid out-pointer.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child blocked on the symbol cache");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    // The parent's lock was released too.
    assert_eq!(resolve(addr)[0].function, name);
}

/// This stack's return addresses, not symbolized in the parent.
#[inline(never)]
fn unresolved_until_the_child() -> Vec<usize> {
    let mut buf = [0usize; MAX_FRAMES];
    let n = capture_with(Unwinder::Dwarf, &mut buf);
    buf[..n].to_vec()
}
