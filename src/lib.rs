//! Support code shared by memprof's examples, benchmarks and end-to-end
//! tests: a small HTTP client for the endpoint tests, and the lookup of the
//! real clients (`go`, `promtool`, `chromium`) the tests drive,
//! [`chromium`], headless Chromium loading the page, and
//! [`distinct_stacks`], many distinct real call stacks on demand.
//!
//! Nothing here is part of the library users depend on; see the `memprof`
//! crate for that.

pub mod chromium;
pub mod distinct_stacks;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A response, read whole.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, or empty.
    pub content_type: String,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// Every header, names lowercase, in order.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// The first header named `name` (lowercase), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A client that reports every status (no error for 4xx/5xx) and follows no
/// redirects, so tests see exactly what the endpoint answered.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Reads a response whole.
pub fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location");
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .unwrap();
    Reply {
        status: response.status().as_u16(),
        content_type,
        location,
        body,
        headers,
    }
}

/// `GET url`.
pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call())
}

/// `POST url` with an empty body.
pub fn post(url: &str) -> Reply {
    reply(agent().post(url).send_empty())
}

/// Runs one `#[ignore]`d test of the running test binary on its own
/// (`--ignored --exact name --nocapture`) and returns whether it passed and
/// its output: how a test checks another test that fails on purpose.
pub fn run_ignored_test(name: &str) -> (bool, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The growth per iteration a failed soak test reports
/// (`... retains 64.3 B more per iteration ...`); panics with the output
/// when there is none.
pub fn soak_growth_per_iteration(output: &str) -> f64 {
    output
        .split("retains ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no growth figure:\n{output}"))
}

/// Whether CI asked for every real client to be present
/// (`MEMPROF_REQUIRE_CLIENTS` set, as `.ci/run` does).
pub fn clients_required() -> bool {
    std::env::var_os("MEMPROF_REQUIRE_CLIENTS").is_some()
}

/// The path of `program` on `PATH`, or `None` (having said why) if the test
/// should skip; panics if it is missing and clients are required.
pub fn client(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !clients_required(),
            "{program} is not installed and MEMPROF_REQUIRE_CLIENTS is set"
        );
        eprintln!("note: {program} not found on PATH; skipping this check");
    }
    found
}

/// Checks two stacks taken one after the other in the same function by two
/// walkers (`walked`, and `reference` from `backtrace`): each begins with its
/// walker's own frames and a different call site in that function, but
/// below those (within the first `TOP` frames of `walked`) they must be the
/// same, down to where both end, or to where either was cut at `max` frames.
///
/// Returns how many frames agree, or what differs.
pub fn same_callers(walked: &[usize], reference: &[usize], max: usize) -> Result<usize, String> {
    /// The walker's own frames and the capturing function's, at most.
    const TOP: usize = 6;
    let agree_from = |j: usize, k: usize| {
        let (w, r) = (&walked[j..], &reference[k..]);
        let common = w.len().min(r.len());
        let cut = walked.len() == max || reference.len() == max;
        (w[..common] == r[..common] && (cut || w.len() == r.len())).then_some(common)
    };
    (0..walked.len().min(TOP))
        .find_map(|j| {
            let k = reference.iter().position(|&b| b == walked[j])?;
            agree_from(j, k)
        })
        .ok_or_else(|| format!("the stacks do not agree below their first {TOP} frames"))
}

/// Runs `go tool pprof -top -cum -nodecount=500 -symbolize=none`, then
/// `extra` arguments, on `target` (a file or a URL), offline: its home and
/// temporary files in `home`, no toolchain download, no module proxy.
/// Returns stdout then stderr; panics with both when pprof fails.
pub fn go_pprof_top(go: &Path, home: &Path, target: &str, extra: &[&str]) -> String {
    let output = Command::new(go)
        .args([
            "tool",
            "pprof",
            "-top",
            "-cum",
            "-nodecount=500",
            "-symbolize=none",
        ])
        .args(extra)
        .arg(target)
        .env("HOME", home)
        .env("PPROF_TMPDIR", home)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "go tool pprof {target} failed: {stderr}\n{stdout}"
    );
    format!("{stdout}\n{stderr}")
}
