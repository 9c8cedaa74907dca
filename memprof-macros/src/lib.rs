//! Procedural macros re-exported by `memprof`.
