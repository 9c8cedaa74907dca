#!/usr/bin/env bash
# Instructions per poll of a future with and without `in_scope`, under
# cachegrind: each variant runs at n and 2n polls and the difference is
# divided by n, so start-up cancels out (as benches/peers/instructions.sh
# does). Needs valgrind.
#
#   benches/scope_poll.sh [N]     (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
exe=$(cargo bench --bench scope_poll --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*scope_poll[^"]*"' | sed 's/"executable":"//; s/"$//')
instructions() { # variant polls
    local out
    out=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" "$exe" "$1" "$2" >/dev/null 2>&1
    awk '/^summary:/ { print $2 }' "$out"
    rm -f "$out"
}
for variant in bare scoped; do
    one=$(instructions "$variant" "$n")
    two=$(instructions "$variant" $((2 * n)))
    awk -v v="$variant" -v a="$one" -v b="$two" -v n="$n" \
        'BEGIN { printf "%-7s %.1f instructions per poll\n", v, (b - a) / n }'
done
