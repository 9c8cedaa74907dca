//! The workloads on `std::alloc::System` (glibc malloc).

#[global_allocator]
static ALLOC: std::alloc::System = std::alloc::System;

fn main() {
    memprof_peers::main("system");
}
