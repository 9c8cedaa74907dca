//! `serve_from_env()` and `MEMPROF_TOKEN`, in their own test binary with a
//! single test, so setting environment variables races with nothing.

use std::time::Duration;

use memprof::http::{serve_from_env, ServeError};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn status(url: &str, token: Option<&str>) -> u16 {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request.call().unwrap().status().as_u16()
}

#[test]
fn memprof_addr_and_token_from_the_environment() {
    // This binary has one test, so nothing reads these variables meanwhile.
    std::env::remove_var("MEMPROF_TOKEN");
    std::env::remove_var("MEMPROF_ADDR");
    assert!(serve_from_env().is_none(), "unset: no endpoint");
    std::env::set_var("MEMPROF_ADDR", "  ");
    assert!(serve_from_env().is_none(), "empty: no endpoint");

    std::env::set_var("MEMPROF_ADDR", "127.0.0.1:0");
    let local = serve_from_env().unwrap().unwrap();
    assert!(local.local_addr().ip().is_loopback());
    assert_eq!(status(&format!("{}/stats", local.url()), None), 200);
    drop(local);

    std::env::set_var("MEMPROF_ADDR", "not-an-address");
    assert!(matches!(
        serve_from_env(),
        Some(Err(ServeError::InvalidAddress { .. }))
    ));

    std::env::set_var("MEMPROF_ADDR", "0.0.0.0:0");
    let refused = serve_from_env().unwrap().unwrap_err();
    assert!(matches!(refused, ServeError::PublicWithoutToken(_)));
    assert!(refused.to_string().contains("MEMPROF_TOKEN"));

    std::env::set_var("MEMPROF_TOKEN", "from-env");
    let public = serve_from_env().unwrap().unwrap();
    let url = format!(
        "http://127.0.0.1:{}/debug/memprof/stats",
        public.local_addr().port()
    );
    assert_eq!(status(&url, None), 401);
    assert_eq!(status(&url, Some("wrong")), 401);
    assert_eq!(status(&url, Some("from-env")), 200);

    // router() reads the token too.
    std::env::set_var("MEMPROF_ADDR", "127.0.0.1:0");
    let local = memprof::serve("127.0.0.1:0").unwrap();
    assert_eq!(status(&format!("{}/stats", local.url()), None), 401);
    assert_eq!(
        status(&format!("{}/stats", local.url()), Some("from-env")),
        200
    );

    // Set but blank: refused, not taken for no token.
    drop(local);
    for blank in ["", "   "] {
        std::env::set_var("MEMPROF_TOKEN", blank);
        let refused = serve_from_env().unwrap().unwrap_err();
        assert!(
            matches!(refused, ServeError::InvalidToken { .. }),
            "{blank:?}: {refused:?}"
        );
        assert!(format!("{refused:?}").contains("MEMPROF_TOKEN"));
    }
    std::env::remove_var("MEMPROF_TOKEN");
    std::env::remove_var("MEMPROF_ADDR");
}
