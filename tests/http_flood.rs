//! A flood of connections that never finish their headers must not cost the
//! service its descriptors: the endpoint caps its connections, times out
//! slow headers, and keeps answering an authenticated client.
//!
//! The service is a child process (this test binary run again, with its
//! descriptor limit lowered to [`CHILD_NOFILE`]) serving on 127.0.0.1 with
//! a token; it opens files when the parent asks, as a service would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use memprof::http::{serve_with, EndpointConfig};

const STATS_REQUEST: &[u8] = b"GET /debug/memprof/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// The child's descriptor limit.
const CHILD_NOFILE: u64 = 256;
/// Half-open connections the parent opens: more than the child can hold.
const FLOOD: usize = CHILD_NOFILE as usize + 44;
/// Files the service opens at once, after the flood.
const SERVICE_FILES: usize = 100;
const TOKEN: &str = "flood-token";
/// Set in the child's environment, so the child test runs only there.
const CHILD_ENV: &str = "MEMPROF_FLOOD_CHILD";

/// The service: serves on loopback with a token under a low descriptor
/// limit, then answers the parent's commands on stdin, one a line:
/// `open N` opens N files at once and closes them; `exhaust` opens files
/// until the limit and holds them; `release` closes those.
#[test]
#[ignore = "the service process of the flood tests, run by them"]
fn flood_service_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        eprintln!("note: run by the flood tests as a child process; nothing to do alone");
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct, which lives across the call.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit.rlim_cur = CHILD_NOFILE.min(limit.rlim_max);
    // SAFETY: as above; setrlimit only reads it.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let endpoint = serve_with("127.0.0.1:0", EndpointConfig::default().token(TOKEN)).unwrap();
    println!("endpoint {}", endpoint.local_addr());
    let mut held = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let answer = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["open", n] => {
                let n: usize = n.parse().unwrap();
                let mut files = Vec::new();
                let failure = (0..n).find_map(|_| match std::fs::File::open("/dev/null") {
                    Ok(f) => {
                        files.push(f);
                        None
                    }
                    Err(e) => Some(e),
                });
                match failure {
                    None => format!("opened {n}"),
                    Some(e) => format!("failed after {}: {e}", files.len()),
                }
            }
            ["exhaust"] => {
                while let Ok(f) = std::fs::File::open("/dev/null") {
                    held.push(f);
                }
                format!("holding {}", held.len())
            }
            ["release"] => {
                held.clear();
                "released".to_string()
            }
            _ => format!("unknown command {line:?}"),
        };
        println!("{answer}");
    }
    drop(endpoint);
}

/// The child service, killed when dropped.
struct Service {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Service {
    fn start() -> Service {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "flood_service_child",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let addr = loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "child ended");
            if let Some(addr) = line.trim().strip_prefix("endpoint ") {
                break addr.parse().unwrap();
            }
        };
        Service {
            child,
            stdin,
            stdout,
            addr,
        }
    }

    fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        assert!(self.stdout.read_line(&mut line).unwrap() > 0, "child ended");
        line.trim().to_string()
    }

    fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The child's CPU time so far (user and system, all threads).
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime: fields 14 and 15 of the whole line, in ticks.
        let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads its argument.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    fn url(&self, route: &str) -> String {
        format!("http://{}/debug/memprof/{route}", self.addr)
    }

    /// Waits until the descriptor count stops changing (the endpoint has
    /// accepted what it will), at most 10 s; returns it.
    fn settled_descriptors(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.open_descriptors();
        let mut stable = 0;
        while stable < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.open_descriptors();
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
        }
        last
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's own descriptor limit so it can hold the flood.
fn allow_flood_here() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct, which lives across the call.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let wanted = (FLOOD as u64 + 256).min(limit.rlim_max);
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted;
        // SAFETY: as above; setrlimit only reads it.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    }
}

/// Connections that send half a request head and then nothing. Each
/// connect waits at most 500 ms (one the kernel's backlog cannot take
/// hangs), and the whole flood at most 20 s.
fn half_open_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let started = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..count {
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            let _ = stream.write_all(b"GET /debug/memprof/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            streams.push(stream);
        }
    }
    streams
}

/// Retries an authenticated `GET stats` until it answers 200 or `within`
/// passes; returns the statuses (or errors) seen before.
fn authenticated_stats(service: &Service, within: Duration) -> Result<Vec<String>, Vec<String>> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let answer = agent
            .get(service.url("stats"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call();
        match answer {
            Ok(r) if r.status() == 200 => return Ok(seen),
            Ok(mut r) => {
                let body = r.body_mut().read_to_string().unwrap_or_default();
                seen.push(format!("{} {body}", r.status().as_u16()));
            }
            Err(e) => seen.push(format!("error: {e}")),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(seen)
}

#[test]
fn half_open_flood_leaves_the_service_its_descriptors() {
    allow_flood_here();
    let mut service = Service::start();
    assert_eq!(
        service.command(&format!("open {SERVICE_FILES}")),
        format!("opened {SERVICE_FILES}")
    );
    let before = service.settled_descriptors();

    let flood = half_open_connections(service.addr, FLOOD);
    let during = service.settled_descriptors();
    eprintln!(
        "{} of {FLOOD} connections made; child descriptors {before} before, {during} during",
        flood.len()
    );
    assert_eq!(
        service.command(&format!("open {SERVICE_FILES}")),
        format!("opened {SERVICE_FILES}"),
        "the service's own open() during the flood ({during} descriptors open)"
    );

    let seen = authenticated_stats(&service, Duration::from_secs(40))
        .unwrap_or_else(|seen| panic!("no 200 within 40 s during the flood; answers: {seen:?}"));
    for answer in &seen {
        assert!(
            answer.starts_with("error") || answer.starts_with("503 {\"error\""),
            "while the slots are full: {answer}"
        );
    }

    // The endpoint closes every flooding connection: at once over the cap,
    // after the header timeout under it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for mut stream in flood {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a flooding connection still open after 30 s: {e}"),
            }
        }
    }
}

/// Reads what the server sends until it closes the connection, at most
/// `within`; `None` if it is still open then.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

#[test]
fn accept_pauses_while_the_service_has_no_descriptors_left() {
    let mut service = Service::start();
    let held = service.command("exhaust");
    assert!(held.starts_with("holding "), "{held}");
    // The endpoint cannot accept this one: it waits in the kernel's backlog.
    let mut waiting = TcpStream::connect_timeout(&service.addr, Duration::from_secs(5)).unwrap();
    waiting
        .write_all(
            format!(
                "GET /debug/memprof/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let before = service.cpu_time();
    std::thread::sleep(Duration::from_secs(3));
    let spent = service.cpu_time() - before;
    eprintln!("child CPU time over 3 s without descriptors: {spent:?}");
    // Retrying accept at once would keep a core busy: about 3 s, or at
    // the least several hundred ms on a loaded machine.
    assert!(
        spent < Duration::from_millis(300),
        "the accept loop spun on EMFILE: {spent:?} of CPU in 3 s"
    );
    assert_eq!(service.command("release"), "released");
    let answer = read_until_closed(&mut waiting, Duration::from_secs(20))
        .expect("the waiting connection answered once descriptors are back");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn idle_connections_and_oversized_heads_are_closed() {
    let endpoint = serve_with(
        "127.0.0.1:0",
        EndpointConfig::default().header_read_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let addr = endpoint.local_addr();

    // Kept alive after its answer, then idle: closed after the timeout.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(STATS_REQUEST).unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(20))
        .expect("an idle kept-alive connection closed by the server");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Headers that never end: closed after the timeout, with nothing sent.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /debug/memprof/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(20))
        .expect("a connection whose head never ends closed by the server");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{answer:?}"
    );

    // A head over 16 KiB is refused before the router sees it.
    let mut big = TcpStream::connect(addr).unwrap();
    let pad = "x".repeat(20 << 10);
    big.write_all(
        format!("GET /debug/memprof/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {pad}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let answer = read_until_closed(&mut big, Duration::from_secs(20))
        .expect("an oversized head answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}
