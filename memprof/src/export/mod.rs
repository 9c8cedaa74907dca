//! Output formats: folded stacks, SVG flamegraphs, pprof, Prometheus text, JSON.
