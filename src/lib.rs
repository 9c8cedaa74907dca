//! Support code shared by memprof's examples, benchmarks and end-to-end tests.
//!
//! Nothing here is part of the library users depend on; see the `memprof`
//! crate for that.
