//! `memprof flamegraph FILE -o OUT.svg [--base OTHER]`: an SVG flamegraph
//! of a profile or dump, drawn by the library's exporter (inferno), or a
//! differential one from OTHER to FILE, red where a stack grew and blue
//! where it shrank.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use memprof::export::flamegraph::{
    write_differential_flamegraph, write_flamegraph, FlamegraphOptions,
};
use memprof::export::profile_file::ReadLimits;
use memprof::Kind;

use crate::source::load;
use crate::{Failure, Result};

pub(crate) fn flamegraph(
    path: &Path,
    base: Option<&Path>,
    output: &Path,
    kind: Kind,
    limits: &ReadLimits,
) -> Result<ExitCode> {
    let after = load(path, limits)?;
    let before = base.map(|b| load(b, limits)).transpose()?;
    let mut options = FlamegraphOptions::for_kind(kind);
    options.title = match base {
        Some(b) => format!(
            "memprof {}: {} from {}",
            kind.name(),
            path.display(),
            b.display()
        ),
        None => format!("memprof {}: {}", kind.name(), path.display()),
    };
    if before.is_some() {
        options.subtitle = Some("red: grew; blue: shrank; sized by the newer profile".to_string());
    }
    let mut svg = Vec::new();
    let drawn = match &before {
        Some(before) => write_differential_flamegraph(
            &before.profile.snapshot,
            &after.profile.snapshot,
            kind,
            &options,
            &mut svg,
        ),
        None => write_flamegraph(&after.profile.snapshot, kind, &options, &mut svg),
    };
    drawn.map_err(|e| Failure(format!("cannot draw the flamegraph: {e}")))?;
    let written = if output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(&svg).and_then(|()| out.flush())
    } else {
        File::create(output).and_then(|file| {
            let mut out = BufWriter::new(file);
            out.write_all(&svg)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        })
    };
    written.map_err(|e| Failure(format!("{}: cannot write it: {e}", output.display())))?;
    Ok(ExitCode::SUCCESS)
}
