//! Headless Chromium loads the page from an endpoint whose process entered
//! two scopes: the page's "by scope" table lists both, with their figures.
//!
//! Skips with a note when Chromium is missing, unless
//! `MEMPROF_REQUIRE_CLIENTS=1` (set by `.ci/run`), where it fails.

use std::hint::black_box;

use memprof_dev::chromium::{self, dump_dom};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// The rows of the table with id `table` in `dom`, each as its cells' text.
fn table_rows(dom: &str, table: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("<table id=\"{table}\">"))
        .unwrap_or_else(|| panic!("no table {table} in\n{dom}"));
    let body = &dom[start..start + dom[start..].find("</table>").unwrap()];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').unwrap() + 1..];
                    text[..text.find("</td>").unwrap()].to_string()
                })
                .collect()
        })
        .filter(|cells: &Vec<String>| !cells.is_empty())
        .collect()
}

#[test]
fn the_page_lists_memory_by_scope() {
    let Some(binary) = chromium::find() else {
        if memprof_dev::clients_required() {
            panic!("MEMPROF_REQUIRE_CLIENTS=1 but chromium is not installed");
        }
        eprintln!("note: chromium not found; skipping the page test");
        return;
    };
    let previous = memprof::set_thread_rate(Some(1));
    let ingest = memprof::scope("ingest", || black_box(vec![1u8; 3 << 20]));
    let route = memprof::scope("route=GET /users/{id}", || black_box(vec![2u8; 1 << 20]));
    memprof::set_thread_rate(previous);
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();

    let dom = dump_dom(&binary, &format!("{}/", endpoint.url()));
    let rows = table_rows(&dom, "scopes");
    assert_eq!(rows.len(), 2, "one row per scope: {rows:?}\n{dom}");
    // Largest in use first: path, in use, objects, allocated, freed, peak,
    // survivors.
    assert_eq!(rows[0][0], "ingest", "{rows:?}");
    assert_eq!(
        rows[0][1..6],
        ["3.0 MiB", "1", "3.0 MiB", "0 B", "3.0 MiB"],
        "{rows:?}"
    );
    assert_eq!(rows[1][0], "route=GET /users/{id}", "{rows:?}");
    assert_eq!(rows[1][1], "1.0 MiB", "{rows:?}");
    assert!(
        dom.contains("<span id=\"status\" class=\"\">updated "),
        "every fetch succeeded\n{dom}"
    );
    drop((ingest, route));
}
