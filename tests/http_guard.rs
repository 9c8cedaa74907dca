//! What the endpoint must not give away or do for the wrong caller, over
//! real HTTP: other processes' arguments in `/host`, answers to a foreign
//! `Host` (DNS rebinding), state changes asked for by another origin; and
//! the headers every response carries. Served by `serve()` and nested in a
//! user's own axum app.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use memprof::http::{serve_with, EndpointConfig, EndpointHandle, PREFIX};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// A response read off a raw socket, so tests can send any `Host`.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `method path` with `headers` (and `Host: addr` unless one is given)
/// and reads the whole response.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request += &format!("Host: {addr}\r\n");
    }
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "Connection: close\r\nContent-Length: 0\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Raw {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out += &after[..size];
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

fn start(config: EndpointConfig) -> EndpointHandle {
    serve_with("127.0.0.1:0", config).unwrap()
}

/// The child process [`host_lists_program_names_not_arguments`] starts: it
/// keeps 128 MiB resident, so it ranks among the largest processes by PSS,
/// says `memprof-child-ready` on a line of its own, and waits until its stdin closes.
#[test]
#[ignore = "the child process of host_lists_program_names_not_arguments"]
fn child_holding_memory() {
    let block = black_box(vec![7u8; 128 << 20]);
    println!("\nmemprof-child-ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(block);
}

/// A child whose command line carries `secret`; killed on drop.
struct SecretChild(Child);

impl SecretChild {
    fn start(secret: &str) -> SecretChild {
        // After `--`, libtest takes the secret as one more name filter,
        // which matches no test: only `child_holding_memory` runs.
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "child_holding_memory",
                "--",
                secret,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.trim() == "memprof-child-ready")),
            "the child never said ready"
        );
        SecretChild(child)
    }
}

impl Drop for SecretChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn host_lists_program_names_not_arguments() {
    let secret = format!(
        "--db-password=memprof-secret-{}-hunter2",
        std::process::id()
    );
    let child = SecretChild::start(&secret);
    let pid = u64::from(child.0.id());
    let exe = std::env::current_exe().unwrap();
    let program = exe.file_name().unwrap().to_str().unwrap().to_string();

    let endpoint = start(EndpointConfig::default());
    let addr = endpoint.local_addr();
    let json = raw(addr, "GET", &format!("{PREFIX}/host?top=50"), &[]);
    assert_eq!(json.status, 200, "{}", json.body);
    assert!(
        !json.body.contains("memprof-secret"),
        "a process's arguments went out over HTTP: {}",
        json.body
    );
    let host = json.json();
    let rows = host["top_processes"]["processes"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("the child {pid} is not listed: {host}"));
    assert_eq!(row["name"], program.as_str(), "{row}");
    assert!(row.get("command").is_none(), "{row}");

    let text = raw(
        addr,
        "GET",
        &format!("{PREFIX}/host?top=50&format=text"),
        &[],
    );
    assert_eq!(text.status, 200);
    assert!(text.body.contains(&program), "{}", text.body);
    assert!(!text.body.contains("memprof-secret"), "{}", text.body);

    // The operator's opt-in shows whole command lines.
    let open = start(EndpointConfig::default().command_lines(true));
    let json = raw(
        open.local_addr(),
        "GET",
        &format!("{PREFIX}/host?top=50"),
        &[],
    );
    let host = json.json();
    let row = host["top_processes"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("the child {pid} is not listed: {host}"));
    assert!(row["command"].as_str().unwrap().contains(&secret), "{row}");
    drop(child);
}

#[test]
fn loopback_endpoint_answers_only_to_loopback_hosts() {
    let endpoint = start(EndpointConfig::default());
    let addr = endpoint.local_addr();
    let port = addr.port();
    let stats = format!("{PREFIX}/stats");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let r = raw(addr, "GET", &stats, &[("Host", &host)]);
        assert_eq!(r.status, 200, "Host: {host}: {}", r.body);
    }
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_string(),
        format!("localhost.attacker.example:{port}"),
        format!("127.0.0.1.attacker.example:{port}"),
        format!("10.1.2.3:{port}"),
    ] {
        for path in [stats.as_str(), PREFIX, "/"] {
            let r = raw(addr, "GET", path, &[("Host", &host)]);
            assert_eq!(r.status, 421, "Host: {host} {path}: {}", r.body);
            let error = r.json()["error"].as_str().unwrap().to_string();
            assert!(
                error.contains(&host) && error.contains("allow_host"),
                "{error}"
            );
        }
    }

    // A proxy's name, allowed by the operator; others still refused.
    let proxied = start(EndpointConfig::default().allow_host("memprof.example.com"));
    let addr = proxied.local_addr();
    let r = raw(addr, "GET", &stats, &[("Host", "memprof.example.com")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(addr, "GET", &stats, &[("Host", "MEMPROF.example.com:8443")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(addr, "GET", &stats, &[("Host", "attacker.example")]);
    assert_eq!(r.status, 421, "{}", r.body);

    // Or any name at all.
    let open = start(EndpointConfig::default().any_host());
    let r = raw(
        open.local_addr(),
        "GET",
        &stats,
        &[("Host", "attacker.example")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn cross_origin_state_changes_are_refused() {
    let endpoint = start(EndpointConfig::default());
    let addr = endpoint.local_addr();
    let own = format!("http://{addr}");
    let snapshots = format!("{PREFIX}/snapshots");
    let purge = format!("{PREFIX}/allocator/purge");
    for (path, headers) in [
        (&purge, vec![("Origin", "http://attacker.example")]),
        (&snapshots, vec![("Origin", "http://attacker.example")]),
        (&snapshots, vec![("Origin", "null")]),
        (&snapshots, vec![("Sec-Fetch-Site", "cross-site")]),
        (&snapshots, vec![("Sec-Fetch-Site", "same-site")]),
        (
            &snapshots,
            vec![
                ("Origin", "http://localhost:1"),
                ("Sec-Fetch-Site", "same-site"),
            ],
        ),
    ] {
        let r = raw(addr, "POST", path, &headers);
        assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("origin"), "{error}");
    }
    // From the endpoint's own origin, or from a client that sends no
    // Origin (curl, scripts), state changes go through.
    for headers in [
        vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
        vec![("Sec-Fetch-Site", "none")],
        vec![],
    ] {
        let r = raw(addr, "POST", &snapshots, &headers);
        assert_eq!(r.status, 201, "{headers:?}: {}", r.body);
    }
    // Reads carry no state change; another origin cannot read the answer
    // without CORS headers, which the endpoint never sends.
    let r = raw(
        addr,
        "GET",
        &format!("{PREFIX}/stats"),
        &[("Origin", "http://attacker.example")],
    );
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn every_response_says_nosniff_and_the_page_has_a_policy() {
    let endpoint = start(EndpointConfig::default());
    let addr = endpoint.local_addr();
    for (path, status) in [
        (format!("{PREFIX}/stats"), 200),
        (format!("{PREFIX}/nope"), 404),
        (format!("{PREFIX}/heap?kind=x"), 400),
        (PREFIX.to_string(), 200),
        (format!("{PREFIX}/"), 308),
        ("/".to_string(), 307),
        ("/elsewhere".to_string(), 404),
    ] {
        let r = raw(addr, "GET", &path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    let with_token = start(EndpointConfig::default().token("guard-test-token"));
    let r = raw(
        with_token.local_addr(),
        "GET",
        &format!("{PREFIX}/stats"),
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    let page = raw(addr, "GET", PREFIX, &[]);
    let policy = page
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("no policy on the page: {:?}", page.headers))
        .to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    // One hash per inline script and style of the page.
    let scripts = page.body.matches("<script>").count();
    let styles = page.body.matches("<style>").count();
    assert_eq!(
        policy.matches("'sha256-").count(),
        scripts + styles,
        "{policy}"
    );
}

/// Serves `app` (the user's own axum app) on a loopback port.
fn serve_app(app: axum::Router) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, addr)
}

#[test]
fn nested_router_keeps_the_apps_host_names_and_refuses_other_origins() {
    let app = axum::Router::new().nest(
        "/debug/memprof",
        memprof::http::router_with(EndpointConfig::default()),
    );
    let (runtime, addr) = serve_app(app);
    let stats = "/debug/memprof/stats";
    // Where it is nested, the app's own host names are the app's business.
    let r = raw(addr, "GET", stats, &[("Host", "myservice.internal:8080")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = raw(
        addr,
        "POST",
        "/debug/memprof/allocator/purge",
        &[("Origin", "http://attacker.example")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    drop(runtime);

    // An app that names its hosts gets the check too.
    let app = axum::Router::new().nest(
        "/debug/memprof",
        memprof::http::router_with(EndpointConfig::default().allow_host("myservice.internal")),
    );
    let (runtime, addr) = serve_app(app);
    let r = raw(addr, "GET", stats, &[("Host", "myservice.internal:8080")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(addr, "GET", stats, &[("Host", "localhost")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(addr, "GET", stats, &[("Host", "attacker.example")]);
    assert_eq!(r.status, 421, "{}", r.body);
    drop(runtime);
}
