#!/usr/bin/env bash
# Checks table.awk against a fixture whose figures were worked out by hand
# (and independently in Python): medians, ratios of medians, the per-round
# paired ratios' median and its 95% interval (order statistics 18 and 33 of
# W2's 50 rounds), and W3's req/s, p99 and CPU columns. W1's jemalloc
# drifts from round to round while memprof's per-round ratio does not, so
# pairing the wrong runs shows; W2's interval depends on the 1.96.
#
#   benches/peers/tests/table.sh      (run by .ci/run; needs only awk)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
got=$(awk -v order="jemalloc memprof" -v worder="w1 w2 w3" -f "$here/../table.awk" "$here/table.raw")
if ! diff -u "$here/table.expected.md" <(echo "$got"); then
    echo "table.awk: output differs from table.expected.md" >&2
    exit 1
fi
echo "table.awk: ok"
