// `#[memprof::test(scope = ...)]` misused: each item below is a compile
// error that says what to write instead.

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

// A scope path is a string.
#[memprof::test(scope = ingest)]
fn scope_not_in_quotes() {}

// An empty path names no scope.
#[memprof::test(max_leak = "1 KiB", scope = "")]
fn empty_scope() {}

// One scope per test.
#[memprof::test(scope = "ingest", scope = "parse")]
fn scope_given_twice() {}

// A misspelt argument lists the ones there are.
#[memprof::test(iterations = 100, scopes = "ingest")]
fn unknown_argument() {}

fn main() {}
