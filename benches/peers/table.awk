# Renders run.sh's raw result lines as a markdown table.
#
#   awk -v order="system jemalloc ..." -v worder="w1 w1-deep w2" -f table.awk RAW
#
# Per (workload, variant): runs, median ns/op, min..max, the ratio of the
# medians to bare jemalloc's, and the median of the per-round ratios (the
# i-th run of a variant against the i-th jemalloc run of the same workload,
# which ran in the same round: the paired figure, less sensitive to noise
# that drifts between rounds).
{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["workload"] SUBSEP f["variant"]
    n[k]++; v[k, n[k]] = f["ns_per_op"]
}
function median_of(a, m,   i, j, t) {
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function median(k,   i, a) {
    for (i = 1; i <= n[k]; i++) a[i] = v[k, i]
    return median_of(a, n[k])
}
function paired(k, b,   i, m, a) {
    m = n[k] < n[b] ? n[k] : n[b]
    for (i = 1; i <= m; i++) a[i] = v[k, i] / v[b, i]
    return median_of(a, m)
}
function spread(k,   i, lo, hi) {
    lo = hi = v[k, 1]
    for (i = 2; i <= n[k]; i++) { if (v[k, i] < lo) lo = v[k, i]; if (v[k, i] > hi) hi = v[k, i] }
    return sprintf("%.0f..%.0f", lo, hi)
}
END {
    nv = split(order, vs, " "); nw = split(worder, ws, " ")
    print "| workload | variant | runs | median ns/op | min..max ns/op | ratio of medians vs jemalloc | median paired ratio |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= nw; i++) {
        b = ws[i] SUBSEP "jemalloc"
        base = b in n ? median(b) : 0
        for (j = 1; j <= nv; j++) {
            k = ws[i] SUBSEP vs[j]
            if (!(k in n)) continue
            med = median(k)
            ratio = base > 0 ? sprintf("%.3f", med / base) : "-"
            pr = base > 0 ? sprintf("%.3f", paired(k, b)) : "-"
            printf "| %s | %s | %d | %.1f | %s | %s | %s |\n", ws[i], vs[j], n[k], med, spread(k), ratio, pr
        }
    }
}
