//! memprof's tracing layer in a real subscriber, beside the fmt layer:
//! chosen spans become scopes with exact figures at rate 1, nested spans
//! nest, label fields become `key=value` segments, and an `Instrument`ed
//! future keeps its scope while tokio moves it between worker threads.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use memprof::tracing::MemprofLayer;
use tracing::{Dispatch, Instrument};
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// A registry with the fmt layer (writing nowhere) and memprof's layer.
fn dispatch(layer: MemprofLayer) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .with(layer),
    )
}

fn scope(path: &str) -> memprof::ScopeStats {
    memprof::scopes()
        .into_iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            let paths: Vec<String> = memprof::scopes().into_iter().map(|s| s.path).collect();
            panic!("no scope {path:?} in {paths:?}")
        })
}

#[test]
fn chosen_spans_are_scopes_with_exact_figures_nested_and_labelled() {
    let layer = MemprofLayer::new()
        .spans(["tl-request"])
        .filter(|m| m.name() == "tl-filtered")
        .label_fields(["route", "tenant"]);
    tracing::dispatcher::with_default(&dispatch(layer), || {
        let request = tracing::info_span!("tl-request", tenant = "acme", route = "GET /users/{id}");
        let parse = tracing::info_span!(parent: &request, "tl-parse", memprof.scope = true);
        let ignored = tracing::info_span!(parent: &parse, "tl-ignored", route = "GET /nope");
        let filtered = tracing::info_span!("tl-filtered");
        // The subscriber's own per-thread state is made before measuring.
        for _ in 0..2 {
            let _r = request.enter();
            let _p = parse.enter();
            let _i = ignored.enter();
        }
        let previous = memprof::set_thread_rate(Some(1));
        let (kept, outside) = {
            let _r = request.enter();
            let in_request = black_box(vec![1u8; 1000]);
            let (in_parse, in_ignored) = {
                let _p = parse.enter();
                let in_parse = black_box(vec![2u8; 300]);
                let _i = ignored.enter();
                (in_parse, black_box(vec![3u8; 50]))
            };
            drop(_r);
            // Exited: the thread is outside every scope again.
            let outside = black_box(vec![4u8; 7000]);
            let in_filtered = filtered.in_scope(|| black_box(vec![5u8; 64]));
            ((in_request, in_parse, in_ignored, in_filtered), outside)
        };
        memprof::set_thread_rate(previous);

        let labelled = "tl-request/route=GET /users/{id}/tenant=acme";
        let request_scope = scope(labelled);
        assert_eq!(request_scope.alloc_bytes, 1000.0 + 300.0 + 50.0);
        assert_eq!(request_scope.net_bytes, 1350.0);
        assert_eq!(request_scope.entered, 1, "once per span, not per entry");
        assert_eq!(scope("tl-request").alloc_bytes, 1350.0, "the name rolls up");
        let parse_scope = scope(&format!("{labelled}/tl-parse"));
        assert_eq!(
            parse_scope.alloc_bytes, 350.0,
            "the unchosen span counts in its chosen parent"
        );
        assert_eq!(scope("tl-filtered").alloc_bytes, 64.0);
        assert!(
            memprof::scopes()
                .iter()
                .all(|s| !s.path.contains("tl-ignored") && !s.path.contains("GET /nope")),
            "an unchosen span is no scope, and its fields no label"
        );
        drop((kept, outside));
        assert_eq!(scope(labelled).net_bytes, 0.0);
    });
}

const TASKS: usize = 8;
const ROUNDS: usize = 20;

/// One task's work: a block per round held across an await (so it may be
/// freed on another thread than it was allocated on); the threads it ran on.
async fn task_work(task: usize) -> usize {
    let mut threads = [None; ROUNDS];
    for thread in &mut threads {
        let block = black_box(vec![task as u8; 1000 + task]);
        tokio::time::sleep(Duration::from_millis(1)).await;
        *thread = Some(std::thread::current().id());
        drop(black_box(block));
    }
    let distinct: HashSet<_> = memprof::unsampled(|| threads.iter().flatten().copied().collect());
    distinct.len()
}

#[test]
fn an_instrumented_future_keeps_its_scope_across_worker_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .on_thread_start(|| {
            memprof::set_thread_rate(Some(1));
        })
        .build()
        .unwrap();
    let dispatch = dispatch(
        MemprofLayer::new()
            .spans(["tl-task"])
            .label_fields(["task"]),
    );
    let handles: Vec<_> = tracing::dispatcher::with_default(&dispatch, || {
        (0..TASKS)
            .map(|task| {
                runtime.spawn(task_work(task).instrument(tracing::info_span!("tl-task", task)))
            })
            .collect()
    });
    let threads_per_task: Vec<usize> = runtime.block_on(async {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    drop(runtime);
    assert!(
        threads_per_task.iter().any(|&n| n > 1),
        "some task moved between workers: {threads_per_task:?}"
    );
    for task in 0..TASKS {
        let s = scope(&format!("tl-task/task={task}"));
        assert_eq!(
            s.alloc_bytes,
            (ROUNDS * (1000 + task)) as f64,
            "task {task}: {s:?}"
        );
        assert_eq!(s.net_bytes, 0.0, "task {task}: {s:?}");
    }
}
