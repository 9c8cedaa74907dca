//! Without MemProf as the global allocator, `#[memprof::test]` fails and
//! says how to set it.

#[should_panic(expected = "MemProf is not the global allocator")]
#[memprof::test]
fn says_how_to_set_the_allocator() {
    let v: Vec<u32> = (1..=3).collect();
    assert_eq!(v.len(), 3);
}
