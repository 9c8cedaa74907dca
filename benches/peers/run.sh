#!/usr/bin/env bash
# memprof against its peers: builds one binary per global allocator, runs the
# workloads paired and interleaved, and prints a markdown table of medians
# with each variant's ratio to bare jemalloc from the same run.
#
#   benches/peers/run.sh [ROUNDS] [WORKLOAD...]    (default 7; w1 w1-deep w2)
#
# Workloads: w1, w1-deep, w2 (fixed op counts) and w3 (axum service under
# loopback load for a fixed time: 0.5 s warm-up + 3 s measured, ~4 s a run;
# variants system, jemalloc, memprof (with its endpoint on) and jeprof, so
# ~2 min for 7 rounds: not in the default list, ask for it: `run.sh 7 w3`).
#
# Each round runs every (workload, variant) pair once, variants in a fresh
# random order per workload, so machine noise (other builds on a 2-core box)
# falls on all variants alike; the table (table.awk) shows medians over the
# rounds, each median's ratio to bare jemalloc's and the median of the
# per-round paired ratios.
# Compared figure: ns per operation (per request in w2) per thread. The
# every-allocation variants (memprof-exact, dhat) run fewer operations so a
# round stays short; their per-op figure is still comparable.
# W3 is compared on requests/s and p99 latency instead (table.awk prints a
# second table for it); its size is the measured window in ms.
#
# Env: PEERS_SCALE multiplies every op count (default 1); VARIANTS="jemalloc
# memprof" runs only those variants, in any order, memprof-off (sampling
# off: the fast paths alone) included (a long run that settles one ratio:
# `VARIANTS="jemalloc memprof" run.sh 200 w2`); RESULTS=path also
# writes the table, the machine and the command to that file (RESULTS.md:
# `RESULTS=RESULTS.md benches/peers/run.sh`); CARGO_TARGET_DIR with
# RUSTFLAGS measures another build (`RUSTFLAGS="-C force-frame-pointers=yes"
# CARGO_TARGET_DIR=/tmp/peers-fp run.sh`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

rounds=${1:-7}
shift || true
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(w1 w1-deep w2)
scale=${PEERS_SCALE:-1}

# CARGO_TARGET_DIR moves the main build (to compare builds with other
# RUSTFLAGS side by side, e.g. -C force-frame-pointers=yes) and jeprof's
# beside it.
bin=${CARGO_TARGET_DIR:-$here/target}/release
jeprof_target=${CARGO_TARGET_DIR:-$here/target}-jeprof
jeprof_bin=$jeprof_target/release/peer-jeprof

# variant -> command prefix (env + binary)
declare -A cmd=(
    [system]="$bin/peer-system"
    [jemalloc]="$bin/peer-jemalloc"
    [memprof]="env -u MEMPROF_RATE $bin/peer-memprof"
    [memprof-off]="env MEMPROF_RATE=0 $bin/peer-memprof"
    [memprof-exact]="env MEMPROF_RATE=1 $bin/peer-memprof"
    [dhat]="$bin/peer-dhat"
    [jeprof]="env _RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19 $jeprof_bin"
)
variants=(system jemalloc memprof memprof-exact jeprof dhat)
if [ -n "${VARIANTS:-}" ]; then
    read -r -a variants <<<"$VARIANTS"
    for v in "${variants[@]}"; do
        [ -n "${cmd[$v]:-}" ] || { echo "unknown variant $v (known: ${!cmd[*]})" >&2; exit 2; }
    done
fi

echo "building (release, line-tables-only)..." >&2
cargo build --release --quiet --features system,jemalloc,memprof,dhat --bins
# jemalloc's `profiling` feature unifies across a build: its own target dir,
# built only when the jeprof variant runs.
if [[ " ${variants[*]} " == *" jeprof "* ]]; then
    CARGO_TARGET_DIR="$jeprof_target" cargo build --release --quiet --features jeprof --bin peer-jeprof
fi

# Ops per thread: full for the sampling variants, fewer for the
# every-allocation ones (see header).
size() { # workload variant
    local n
    case "$1/$2" in
        w1*/memprof-exact) n=500000 ;;
        w1*/dhat) n=100000 ;;
        w1*/*) n=5000000 ;;
        w2/memprof-exact) n=10000 ;;
        w2/dhat) n=1000 ;;
        w2/*) n=50000 ;;
        w3/memprof-exact | w3/dhat) return 0 ;; # not run: empty size
        w3/*) n=3000 ;;
        *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
    awk -v n="$n" -v s="$scale" 'BEGIN { printf "%d", n * s }'
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    for w in "${workloads[@]}"; do
        for v in $(printf '%s\n' "${variants[@]}" | shuf); do
            n=$(size "$w" "$v")
            [ -n "$n" ] || continue
            line=$(${cmd[$v]} "$w" "$n" 2>/dev/null) || {
                echo "FAILED: $v $w" >&2
                continue
            }
            echo "$line" >>"$out"
        done
    done
done

# Medians per (workload, variant), then the table in workload/variant order.
table=$(awk -v order="${variants[*]}" -v worder="${workloads[*]}" -f "$here/table.awk" "$out")

echo "$table"

# RESULTS: keep the hand-written part of the file (everything up to the
# marker line) and replace what follows it with this run.
marker='<!-- run.sh writes below this line -->'
if [ -n "${RESULTS:-}" ]; then
    {
        if [ -f "$RESULTS" ] && grep -qxF "$marker" "$RESULTS"; then
            sed "/^$marker\$/q" "$RESULTS"
        else
            echo "$marker"
        fi
        echo
        echo "## Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "Command: \`RESULTS=$RESULTS benches/peers/run.sh $rounds ${workloads[*]}\`${PEERS_SCALE:+ with PEERS_SCALE=$PEERS_SCALE}"
        echo
        echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)," \
            "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        echo "$table"
        echo
        echo "Raw lines:"
        echo
        echo '```'
        cat "$out"
        echo '```'
    } >"$RESULTS.tmp"
    mv "$RESULTS.tmp" "$RESULTS"
    echo "wrote $RESULTS" >&2
fi
