# Renders run.sh's raw result lines as a markdown table.
#
#   awk -v order="system jemalloc ..." -v worder="w1 w1-deep w2" -f table.awk RAW
#
# Per (workload, variant): runs, median ns/op, min..max, the ratio of the
# medians to bare jemalloc's, and the median of the per-round ratios (the
# i-th run of a variant against the i-th jemalloc run of the same workload,
# which ran in the same round: the paired figure, less sensitive to noise
# that drifts between rounds) with its 95% confidence interval: the
# distribution-free one for a median, between the order statistics k and
# n-k+1 of the sorted ratios, k = (n - 1.96 sqrt(n)) / 2 (at least 1, so
# with few rounds it is the whole range). A target such as "<= 1.01" is
# confirmed by the interval's upper end, refuted by its lower end.
#
# W3 (the axum service, whose lines carry rps= and p99_us=) gets a table of
# its own: median requests/s and p99 latency, each with its min..max, its
# ratio of medians to bare jemalloc's and the median paired ratio. A W3
# throughput ratio below 1 is a loss (fewer requests/s than jemalloc).
# Where its lines carry cpu_us= (the whole process's CPU time per request
# answered), the table adds its median, the median paired ratio and that
# ratio's 95% interval; a CPU ratio above 1 is a loss.
{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["workload"] SUBSEP f["variant"]
    n[k]++; v[k, n[k]] = f["ns_per_op"]
    if ("rps" in f) { rps[k, n[k]] = f["rps"]; p99[k, n[k]] = f["p99_us"]; isw3[f["workload"]] = 1 }
    if ("cpu_us" in f && f["cpu_us"] != "-") { cpu[k, n[k]] = f["cpu_us"]; hascpu[k] = 1 }
    delete f
}
# Statistics over one per-run figure (`arr`: v, the ns/op, or rps, p99,
# cpu) of the runs of key `k`; `b` is the bare-jemalloc key of the same
# workload.
function med_of(arr, k,   i, a) {
    for (i = 1; i <= n[k]; i++) a[i] = arr[k, i] + 0
    return median_of(a, n[k])
}
# Fills `a` with the per-round ratios arr[k]/arr[b], sorted; returns their count.
function ratios_of(arr, k, b, a,   i, m) {
    m = n[k] < n[b] ? n[k] : n[b]
    for (i = 1; i <= m; i++) a[i] = arr[k, i] / arr[b, i]
    median_of(a, m)
    return m
}
function paired_of(arr, k, b,   m, a) {
    m = ratios_of(arr, k, b, a)
    return median_of(a, m)
}
# The 95% interval of the median paired ratio (see the header), as lo..hi.
function paired_ci(arr, k, b,   m, a, lo) {
    m = ratios_of(arr, k, b, a)
    lo = int((m - 1.96 * sqrt(m)) / 2)
    if (lo < 1) lo = 1
    return sprintf("%.3f..%.3f", a[lo], a[m - lo + 1])
}
function spread_of(arr, k, fmt,   i, lo, hi) {
    lo = hi = arr[k, 1] + 0
    for (i = 2; i <= n[k]; i++) { if (arr[k, i] + 0 < lo) lo = arr[k, i] + 0; if (arr[k, i] + 0 > hi) hi = arr[k, i] + 0 }
    return sprintf(fmt ".." fmt, lo, hi)
}
# Sorts a[1..m] in place; returns its median.
function median_of(a, m,   i, j, t) {
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
    nv = split(order, vs, " "); nw = split(worder, ws, " ")
    plain = 0
    for (i = 1; i <= nw; i++) if (!(ws[i] in isw3)) plain++
    if (plain) {
        print "| workload | variant | runs | median ns/op | min..max ns/op | ratio of medians vs jemalloc | median paired ratio | its 95% interval |"
        print "|---|---|---|---|---|---|---|---|"
    }
    for (i = 1; i <= nw; i++) {
        if (ws[i] in isw3) continue
        b = ws[i] SUBSEP "jemalloc"
        base = b in n ? med_of(v, b) : 0
        for (j = 1; j <= nv; j++) {
            k = ws[i] SUBSEP vs[j]
            if (!(k in n)) continue
            med = med_of(v, k)
            ratio = base > 0 ? sprintf("%.3f", med / base) : "-"
            pr = base > 0 ? sprintf("%.3f", paired_of(v, k, b)) : "-"
            ci = base > 0 ? paired_ci(v, k, b) : "-"
            printf "| %s | %s | %d | %.1f | %s | %s | %s | %s |\n", ws[i], vs[j], n[k], med, spread_of(v, k, "%.0f"), ratio, pr, ci
        }
    }
    for (i = 1; i <= nw; i++) {
        if (!(ws[i] in isw3)) continue
        if (plain) print ""
        print "| workload | variant | runs | median req/s | min..max req/s | req/s ratio of medians | median paired req/s ratio | its 95% interval | median p99 us | min..max p99 us | p99 ratio of medians | median paired p99 ratio | median CPU us/request | median paired CPU ratio | its 95% interval |"
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        b = ws[i] SUBSEP "jemalloc"
        for (j = 1; j <= nv; j++) {
            k = ws[i] SUBSEP vs[j]
            if (!(k in n)) continue
            mr = med_of(rps, k); mp = med_of(p99, k)
            if (b in n) {
                rr = sprintf("%.3f", mr / med_of(rps, b)); prr = sprintf("%.3f", paired_of(rps, k, b)); cir = paired_ci(rps, k, b)
                rp = sprintf("%.3f", mp / med_of(p99, b)); prp = sprintf("%.3f", paired_of(p99, k, b))
            } else rr = prr = cir = rp = prp = "-"
            mc = pc = cic = "-"
            if (k in hascpu) mc = sprintf("%.2f", med_of(cpu, k))
            if (k in hascpu && b in hascpu) { pc = sprintf("%.3f", paired_of(cpu, k, b)); cic = paired_ci(cpu, k, b) }
            printf "| %s | %s | %d | %.0f | %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |\n", ws[i], vs[j], n[k], mr, spread_of(rps, k, "%.0f"), rr, prr, cir, mp, spread_of(p99, k, "%.1f"), rp, prp, mc, pc, cic
        }
    }
}
