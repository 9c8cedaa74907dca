#!/usr/bin/env bash
# Runs memprof's benchmarks and prints tables of medians and ratios.
#
#   benches/run.sh [ROUNDS]     (default 9)
#
# Allocation (workload W1, see benches/support/workload.rs): the variants
# bare jemalloc, MemProf<Jemalloc> at the default rate, and MemProf in exact
# mode (MEMPROF_RATE=1) are separate binaries (a global allocator is per
# binary), run interleaved ROUNDS times so machine noise hits them alike;
# the table shows each variant's median ns per operation and its ratio to
# bare jemalloc's median from the same run.
#
# Capture: benches/capture.rs in a normal release build, and again in a
# build with frame pointers (RUSTFLAGS=-C force-frame-pointers=yes, its own
# target dir) where the frame-pointer walker is meaningful.
#
# Builds go to $BENCH_TARGET_DIR (default /work/target-bench, or
# target/bench-run), away from the shared target dir.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-9}
target=${BENCH_TARGET_DIR:-$( [ -d /work ] && echo /work/target-bench || echo target/bench-run )}
ops=${BENCH_OPS:-2000000}
exact_ops=${BENCH_EXACT_OPS:-100000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

executables() { # target-dir, extra RUSTFLAGS
    CARGO_TARGET_DIR=$1 RUSTFLAGS="${2:-}" cargo bench --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//'
}

echo "building (target dir $target)..." >&2
exes=$(executables "$target")
bare=$(grep '/alloc_bare-' <<<"$exes")
prof=$(grep '/alloc_memprof-' <<<"$exes")
capture=$(grep '/capture-' <<<"$exes")
exes_fp=$(executables "$target-fp" "-C force-frame-pointers=yes")
capture_fp=$(grep '/capture-' <<<"$exes_fp")

for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    BENCH_OPS=$ops "$bare" --bench >>"$out"
    BENCH_OPS=$ops env -u MEMPROF_RATE "$prof" --bench >>"$out" 2>/dev/null
    BENCH_OPS=$exact_ops MEMPROF_RATE=1 "$prof" --bench >>"$out" 2>/dev/null
done
"$capture" --bench | sed 's/^capture /capture build=release /' >>"$out"
"$capture_fp" --bench | sed 's/^capture /capture build=frame-pointers /' >>"$out"

echo
echo "W1 alloc/free, ns per operation per thread (median of $rounds interleaved runs)"
printf '%-28s %8s %10s %8s\n' variant threads ns/op ratio
awk '
$1 == "alloc" {
    split($3, t, "="); split($4, v, "=");
    key = $2 SUBSEP t[2]; n[key]++; vals[key, n[key]] = v[2]; seen[$2] = 1; order[++k] = $2
}
function median(key,   i, j, m, tmp, a) {
    m = n[key]; for (i = 1; i <= m; i++) a[i] = vals[key, i];
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
    return a[int((m + 1) / 2)]
}
END {
    for (th = 1; th <= 2; th++) {
        base = median("jemalloc" SUBSEP th);
        delete done;
        for (i = 1; i <= k; i++) {
            name = order[i]; if (name in done) continue; done[name] = 1;
            med = median(name SUBSEP th);
            printf "%-28s %8d %10.2f %8.2f\n", name, th, med, med / base
        }
    }
}' "$out"

echo
echo "Stack capture, ns per stack (median of 31 interleaved batches)"
printf '%-16s %-16s %8s %9s %8s\n' build walker frames captured ns
awk '$1 == "capture" {
    split($2, b, "="); split($4, f, "="); split($5, c, "="); split($6, ns, "=");
    printf "%-16s %-16s %8s %9s %8s\n", b[2], $3, f[2], c[2], ns[2]
}' "$out"
