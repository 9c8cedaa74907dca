// `#[memprof::test]` misused with async functions: each item below is a
// compile error that says what to write instead.

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

// Below #[tokio::test], a soak would build a runtime every iteration.
#[tokio::test]
#[memprof::test(iterations = 10, max_growth_per_iter = "16 B")]
async fn soak_below_tokio_test() {}

// worker_threads belongs to the multi-thread flavour.
#[memprof::test]
#[tokio::test(worker_threads = 2)]
async fn workers_without_multi_thread() {}

// An argument memprof does not pass on to the runtime it builds.
#[memprof::test]
#[tokio::test(flavor = "multi_thread", unhandled_panic = "shutdown_runtime")]
async fn unsupported_tokio_argument() {}

// #[tokio::test] on a function that is not async.
#[memprof::test]
#[tokio::test]
fn tokio_test_on_a_sync_function() {}

fn main() {}
