//! What part a frame plays in an allocation's stack, and how much of the
//! leaf end the views trim.
//!
//! An allocation's stack, read from the leaf, starts with memprof recording
//! it (the sampler, the unwinder), then the allocator shim the
//! `#[global_allocator]` attribute generates (`__rust_alloc`, whose debug
//! info points at the attribute's line in the user's file), then the
//! standard library's allocation plumbing (`alloc::alloc::alloc`, `RawVec`,
//! `Vec::with_capacity`, `String` growth, `Box::new`, iterator `collect`),
//! and only then the program's code that asked for memory. Release builds
//! inline most of the plumbing into the caller; debug builds keep ten or more
//! of those frames, and a view that shows them leads every stack with the
//! same `alloc` line. Go's pprof drops its runtime's allocation frames for
//! the same reason; memprof trims them from the leaf end by default
//! ([`Trim::Allocation`]) and shows them on request ([`Trim::None`]).
//!
//! Only a run at the leaf end is trimmed: a library frame between two of the
//! program's frames (a `map` closure called from `Iterator::collect`) stays.

use super::Frame;

/// What part a frame plays in an allocation's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameRole {
    /// memprof recording the allocation, and the unwinder it runs: never the
    /// program's, never shown.
    Profiler,
    /// The allocator shim and the standard library (`std`, `core`, `alloc`
    /// and what they vendor): the plumbing between the program and the
    /// allocator.
    Library,
    /// The program's own code and its dependencies.
    Program,
}

/// How much of a stack's leaf end the views leave out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trim {
    /// memprof's frames, the allocator shim and the standard library's
    /// allocation frames: a stack leads with the program's code. A stack
    /// with nothing of the program's (the runtime starting a thread) keeps
    /// its library frames.
    #[default]
    Allocation,
    /// Only memprof's own frames, which are not the program's: the
    /// allocator shim and the standard library's frames stay.
    None,
}

impl Trim {
    /// The name HTTP queries use (`trim=allocation`, `trim=none`).
    pub fn name(self) -> &'static str {
        match self {
            Trim::Allocation => "allocation",
            Trim::None => "none",
        }
    }

    /// The trim a query names, if it names one.
    pub fn from_name(name: &str) -> Option<Trim> {
        [Trim::Allocation, Trim::None]
            .into_iter()
            .find(|t| t.name() == name)
    }

    /// Whether a frame of `role` is trimmed while it is at the leaf end.
    pub(crate) fn trims(self, role: FrameRole) -> bool {
        match role {
            FrameRole::Profiler => true,
            FrameRole::Library => self == Trim::Allocation,
            FrameRole::Program => false,
        }
    }
}

/// The part `frame` plays (see [`FrameRole`]).
///
/// Inlined frames often carry only a short name (`record`, `grow`), so the
/// source file decides where debug info gives one: memprof's `alloc`,
/// `stack` and `sample` modules and the backtrace crate are the profiler's;
/// the toolchain's sources (`/rustc/<hash>/library/...`, and std's vendored
/// crates under `/rust/deps/`) are the library's.
pub(crate) fn frame_role(frame: &Frame) -> FrameRole {
    const PROFILER_NAMES: &[&str] = &[
        "memprof::alloc::",
        "memprof::stack::",
        "memprof::sample::",
        "backtrace::",
        "_Unwind_",
    ];
    // The shims `#[global_allocator]` generates (`__rust_alloc`,
    // `__rg_alloc`, `__rdl_alloc`, with or without the `__rustc::` path
    // newer compilers give them), and the standard library's crates.
    const LIBRARY_NAMES: &[&str] = &[
        "__rustc::",
        "__rust_",
        "__rg_",
        "__rdl_",
        "alloc::",
        "core::",
        "std::",
    ];
    // `<memprof::alloc::MemProf as ...>::alloc` reads as its path.
    let name = frame.function.trim_start_matches('<');
    if PROFILER_NAMES.iter().any(|p| name.starts_with(p)) {
        return FrameRole::Profiler;
    }
    if let Some(file) = frame.file.as_deref() {
        let file = file.replace('\\', "/");
        if is_profiler_file(&file) {
            return FrameRole::Profiler;
        }
        if is_library_file(&file) {
            return FrameRole::Library;
        }
    }
    if LIBRARY_NAMES.iter().any(|p| name.starts_with(p)) {
        return FrameRole::Library;
    }
    FrameRole::Program
}

/// memprof's recording modules and the backtrace crate's sources.
fn is_profiler_file(file: &str) -> bool {
    let in_memprof = ["/memprof/src/", "/memprof-"]
        .iter()
        .any(|d| file.contains(d))
        && ["/src/alloc/", "/src/stack/", "/src/sample/"]
            .iter()
            .any(|d| file.contains(d));
    in_memprof || file.contains("/backtrace-0.") || file.contains("/backtrace/src/")
}

/// The toolchain's sources: std, core and alloc as rustup ships them
/// (`/rustc/<commit>/library/...`), a toolchain built from source
/// (`.../library/alloc/src/...`), and std's vendored crates (`/rust/deps/`).
fn is_library_file(file: &str) -> bool {
    file.starts_with("/rustc/")
        || file.starts_with("/rust/deps/")
        || [
            "/library/alloc/src/",
            "/library/core/src/",
            "/library/std/src/",
        ]
        .iter()
        .any(|d| file.contains(d))
}

/// How many frames at the leaf end of `roles` (leaf first) `trim` leaves
/// out: the run of trimmed roles, unless it is the whole stack, in which
/// case only memprof's own frames go (a stack of nothing but library frames
/// still says where in the runtime it allocated).
pub(crate) fn trimmed_leaf_frames(
    trim: Trim,
    roles: impl Iterator<Item = FrameRole> + Clone,
) -> usize {
    let run = roles.clone().take_while(|&r| trim.trims(r)).count();
    if run < roles.clone().count() {
        return run;
    }
    roles.take_while(|&r| r == FrameRole::Profiler).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>) -> Frame {
        Frame {
            function: function.to_string(),
            file: file.map(str::to_string),
            line: None,
            address: 0,
        }
    }

    #[test]
    fn frames_have_the_role_their_name_or_file_gives() {
        use FrameRole::*;
        let cases = [
            ("memprof::alloc::record::sampled_alloc", None, Profiler),
            (
                "<memprof::alloc::MemProf<A> as core::alloc::global::GlobalAlloc>::alloc",
                None,
                Profiler,
            ),
            ("record", Some("/x/memprof/src/alloc/record.rs"), Profiler),
            (
                "trace",
                Some("/r/registry/src/backtrace-0.3.77/src/backtrace/mod.rs"),
                Profiler,
            ),
            ("_Unwind_Backtrace", None, Profiler),
            // The shim's debug info points at the user's attribute line.
            (
                "__rustc::__rust_alloc",
                Some("/home/u/svc/src/main.rs"),
                Library,
            ),
            ("__rust_alloc", None, Library),
            ("__rg_alloc", None, Library),
            (
                "alloc",
                Some("/rustc/abc/library/alloc/src/alloc.rs"),
                Library,
            ),
            ("alloc::raw_vec::RawVec<T>::grow", None, Library),
            (
                "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
                Some("/rustc/abc/library/alloc/src/vec/spec_from_elem.rs"),
                Library,
            ),
            (
                "hashbrown::raw::RawTable<T>::reserve_rehash",
                Some("/rust/deps/hashbrown-0.15.2/src/raw/mod.rs"),
                Library,
            ),
            (
                "grow",
                Some("/src/rust/library/alloc/src/raw_vec.rs"),
                Library,
            ),
            (
                "memprof::scope::scope",
                Some("/x/memprof/src/scope.rs"),
                Program,
            ),
            ("svc::parse", Some("/home/u/svc/src/parse.rs"), Program),
            // A user's own hashbrown is the program's dependency.
            (
                "hashbrown::raw::RawTable<T>::reserve_rehash",
                Some("/home/u/.cargo/registry/src/x/hashbrown-0.15.2/src/raw/mod.rs"),
                Program,
            ),
            ("0x5555deadbeef", None, Program),
        ];
        for (function, file, role) in cases {
            assert_eq!(
                frame_role(&frame(function, file)),
                role,
                "{function} {file:?}"
            );
        }
    }

    #[test]
    fn only_the_leaf_run_is_trimmed_and_never_the_whole_stack() {
        use FrameRole::*;
        let stack = [
            Profiler, Profiler, Library, Library, Program, Library, Program,
        ];
        let at = |trim| trimmed_leaf_frames(trim, stack.iter().copied());
        assert_eq!(at(Trim::Allocation), 4);
        assert_eq!(at(Trim::None), 2);
        let runtime_only = [Profiler, Library, Library];
        assert_eq!(
            trimmed_leaf_frames(Trim::Allocation, runtime_only.iter().copied()),
            1
        );
        assert_eq!(trimmed_leaf_frames(Trim::Allocation, [].iter().copied()), 0);
    }

    #[test]
    fn trims_are_named_for_queries() {
        for trim in [Trim::Allocation, Trim::None] {
            assert_eq!(Trim::from_name(trim.name()), Some(trim));
        }
        assert_eq!(Trim::from_name("all"), None);
        assert_eq!(Trim::default(), Trim::Allocation);
    }
}
