//! `#[memprof::test]` misuse (async functions, scope paths) fails to compile with a message that says what
//! to write instead (expected text in `tests/ui/*.stderr`; regenerate with
//! `TRYBUILD=overwrite` after an intended change, and review the diff).

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/async_misuse.rs");
    cases.compile_fail("tests/ui/scope_misuse.rs");
}
