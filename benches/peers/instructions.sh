#!/usr/bin/env bash
# Instructions and simulated L1d misses per operation, under cachegrind: the
# noise-free companion of run.sh. Wall-clock ratios on a shared 2-core VM
# move by +-0.1 between runs; instruction counts do not, so a change to the
# allocation path shows here first.
#
#   benches/peers/instructions.sh [WORKLOAD...]    (default: w1 w1-deep w2)
#
# `w3` (the axum service under loopback load, with memprof's endpoint on)
# works too: its load runs for a time, not a count, so its figures are per
# request answered and move by about 1% between runs (more than W1's and
# W2's), and the endpoint's own threads count in the whole-program column.
#
# Variants: bare jemalloc; memprof with sampling off (MEMPROF_RATE=0: the
# fast paths alone, the countdown on alloc and the page gate and filter on
# free); memprof at the default rate; memprof exact (rate 1).
#
# Each variant runs twice, with n and 2n operations per thread, and the
# figures are the difference divided by the extra operations: start-up
# (loading, the unwinder's first walks, filling the ring) cancels out.
# Samples are drawn at random, so the default-rate figures move a little
# between runs (a sample costs a few thousand instructions).
#
# cachegrind simulates one core's caches with the threads interleaved, so
# the misses are the program's own (capacity and conflict), not
# cache-line transfers between cores; it needs `valgrind` installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(w1 w1-deep w2)
command -v valgrind >/dev/null || {
    echo "instructions.sh needs valgrind (apt-get install valgrind)" >&2
    exit 2
}

echo "building (release, line-tables-only)..." >&2
cargo build --release --quiet --features jemalloc,memprof --bins
# CARGO_TARGET_DIR (with RUSTFLAGS) counts another build, as in run.sh.
bin=${CARGO_TARGET_DIR:-$here/target}/release
variants=(jemalloc memprof-off memprof memprof-exact)

command_of() { # variant -> env + binary
    case "$1" in
        jemalloc) echo "$bin/peer-jemalloc" ;;
        memprof-off) echo "env MEMPROF_RATE=0 $bin/peer-memprof" ;;
        memprof) echo "env -u MEMPROF_RATE $bin/peer-memprof" ;;
        memprof-exact) echo "env MEMPROF_RATE=1 $bin/peer-memprof" ;;
    esac
}

size_of() { # workload variant -> operations per thread for the short run
    case "$1/$2" in
        w1*/memprof-exact) echo 20000 ;;
        w1*/*) echo 200000 ;;
        w2/memprof-exact) echo 300 ;;
        w2/*) echo 2000 ;;
        # w3's size is its measured window in ms, and ops the requests
        # answered in it (about 800 a second under cachegrind). The 2n run
        # must end before the history sampler's second tick (5 s), or that
        # tick would count against requests.
        w3/*) echo 1500 ;;
        *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
}

# Runs one variant under cachegrind; prints "ops Ir D1mr D1mw own", where
# `own` counts the instructions of the allocator shims (`__rust_alloc` and
# co., memprof's fast paths inlined in them) and of memprof's and the
# unwinder's functions: the part that does not depend on how jemalloc's
# caches happened to behave in this run.
measure() { # workload variant ops
    local out line ops
    out=$(mktemp)
    # `env` must run under valgrind's child tracing for the binary to be
    # measured rather than `env` itself.
    line=$(valgrind --tool=cachegrind --cache-sim=yes --trace-children=yes \
        --cachegrind-out-file="$out" $(command_of "$2") "$1" "$3" 2>/dev/null)
    ops=$(echo "$line" | sed 's/.*ops=\([0-9]*\).*/\1/')
    awk -v ops="$ops" '
        /^events:/ { for (i = 2; i <= NF; i++) col[$i] = i - 1 }
        /^fn=/ { own_fn = ($0 ~ /memprof|__rust_(alloc|dealloc|realloc|alloc_zeroed)$|framehop|gimli/) }
        /^[0-9]/ { if (own_fn) own += $2 }
        /^summary:/ { summary = ops " " $(col["Ir"] + 1) " " $(col["D1mr"] + 1) " " $(col["D1mw"] + 1) }
        END { print summary, own + 0 }
    ' "$out"
    rm -f "$out"
}

echo "| workload | variant | instructions/op | vs jemalloc | L1d misses/op | vs jemalloc | shims and memprof's own code, instructions/op over jemalloc's shims |"
echo "|---|---|---|---|---|---|---|"
for w in "${workloads[@]}"; do
    base_ir=""
    base_miss=""
    base_own=""
    for v in "${variants[@]}"; do
        n=$(size_of "$w" "$v")
        echo "$w $v: $n and $((2 * n)) ops per thread..." >&2
        read -r ops1 ir1 mr1 mw1 own1 < <(measure "$w" "$v" "$n")
        read -r ops2 ir2 mr2 mw2 own2 < <(measure "$w" "$v" $((2 * n)))
        read -r ir miss own < <(awk -v o1="$ops1" -v o2="$ops2" -v i1="$ir1" -v i2="$ir2" \
            -v r1="$mr1" -v r2="$mr2" -v w1="$mw1" -v w2="$mw2" -v s1="$own1" -v s2="$own2" \
            'BEGIN { d = o2 - o1; printf "%.1f %.2f %.1f\n", (i2 - i1) / d, (r2 + w2 - r1 - w1) / d, (s2 - s1) / d }')
        if [ "$v" = jemalloc ]; then
            base_ir=$ir
            base_miss=$miss
            base_own=$own
        fi
        awk -v w="$w" -v v="$v" -v ir="$ir" -v miss="$miss" -v own="$own" \
            -v bi="$base_ir" -v bm="$base_miss" -v bo="$base_own" \
            'BEGIN { printf "| %s | %s | %.1f | %.3f | %.2f | %.3f | %.1f (%.1f%%) |\n", w, v, ir, ir / bi, miss, miss / bm, own - bo, 100 * (own - bo) / bi }'
    done
done
