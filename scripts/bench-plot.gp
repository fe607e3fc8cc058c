# Throughput against message size, per mechanism and level, from `negio bench --csv=FILE`.
#   gnuplot -e "csv='build/bench.csv'; png='docs/performance-throughput.png'" scripts/bench-plot.gp
# Top row: throughput over wall time; bottom row: MB per CPU second of all processes involved
# (1000 / CPU s per GB), the quantity the bench's ratios compare. Solid: negio end to end over
# loopback (client and server processes); dashed: the in-process GSS limit (one thread, whose
# wall time is its CPU time); dotted: plain TCP through a minimal libuv client and server.
# Kerberos only (issue 18): negio seal on MIT's path (the fast path off on both sides), and the
# fast path's limit, OpenSSL alone on the same bytes (dash-dotted); absent rows are skipped.
if (!exists("csv")) csv = 'build/bench.csv'
if (!exists("png")) png = 'docs/performance-throughput.png'
if (!exists("subtitle")) subtitle = ''

set datafile separator ','
set terminal pngcairo size 1400,1040 enhanced font 'sans,10'
set output png
set logscale x 2
set logscale y 10
set xtics ('64 B' 64, '256 B' 256, '1 KiB' 1024, '4 KiB' 4096, '16 KiB' 16384, '64 KiB' 65536, \
           '256 KiB' 262144, '1 MiB' 1048576)
set xrange [48:1400000]
set yrange [1:10000]
set xlabel 'message size (bytes of application data)'

set grid xtics ytics mytics lc rgb '#dddddd'
set key top left box opaque font ',9'

# one series: the rows of SECTION, MECH, LEVEL and METRIC (lines stay joined: no gaps)
rows(s, m, l, k) = sprintf("< grep -E '^%s,%s,%s,[0-9]+,%s,' '%s'", s, m, l, k, csv)

set multiplot layout 2,2 title 'negio bench: throughput against message size'.subtitle font ',12'
do for [row = 1:2] {
    metric = row == 1 ? 'throughput' : 'cpu_per_gb'
    set ylabel (row == 1 ? 'MB/s over wall time (10^6 bytes of application data)' \
                         : 'MB per CPU second, all processes (1000 / CPU s per GB)')
    do for [mech in 'kerberos ntlm'] {
        set title mech.(row == 1 ? ': throughput' : ': throughput per CPU second')
        if (row == 1) {
            plot rows('e2e', mech, 'none', metric) using 4:6 with linespoints lw 2 pt 7 lc rgb '#2a9d8f' title 'negio none', \
                 rows('e2e', mech, 'sign', metric) using 4:6 with linespoints lw 2 pt 5 lc rgb '#e9a800' title 'negio sign', \
                 rows('e2e', mech, 'seal', metric) using 4:6 with linespoints lw 2 pt 9 lc rgb '#e76f51' title 'negio seal', \
                 rows('gss', mech, 'sign', metric) using 4:6 with linespoints lw 1.5 dt 2 pt 4 lc rgb '#8a6d00' title 'GSS limit: get\_mic+verify\_mic', \
                 rows('gss', mech, 'seal', metric) using 4:6 with linespoints lw 1.5 dt 2 pt 8 lc rgb '#9b2226' title 'GSS limit: wrap+unwrap', \
                 rows('e2e', mech.'-mit', 'seal', metric) using 4:6 with linespoints lw 1 pt 9 lc rgb '#f4a261' title 'negio seal, MIT path', \
                 rows('gss', mech.'-openssl', 'seal', metric) using 4:6 with linespoints lw 1.5 dt 4 pt 8 lc rgb '#6a040f' title 'OpenSSL limit: seal', \
                 rows('tcp', '-', 'tcp', metric) using 4:6 with linespoints lw 1.5 dt 3 pt 6 lc rgb '#555555' title 'plain TCP (libuv)'
        } else {
            plot rows('e2e', mech, 'none', metric) using 4:(1000/$6) with linespoints lw 2 pt 7 lc rgb '#2a9d8f' title 'negio none', \
                 rows('e2e', mech, 'sign', metric) using 4:(1000/$6) with linespoints lw 2 pt 5 lc rgb '#e9a800' title 'negio sign', \
                 rows('e2e', mech, 'seal', metric) using 4:(1000/$6) with linespoints lw 2 pt 9 lc rgb '#e76f51' title 'negio seal', \
                 rows('gss', mech, 'sign', metric) using 4:(1000/$6) with linespoints lw 1.5 dt 2 pt 4 lc rgb '#8a6d00' title 'GSS limit: get\_mic+verify\_mic', \
                 rows('gss', mech, 'seal', metric) using 4:(1000/$6) with linespoints lw 1.5 dt 2 pt 8 lc rgb '#9b2226' title 'GSS limit: wrap+unwrap', \
                 rows('e2e', mech.'-mit', 'seal', metric) using 4:(1000/$6) with linespoints lw 1 pt 9 lc rgb '#f4a261' title 'negio seal, MIT path', \
                 rows('gss', mech.'-openssl', 'seal', metric) using 4:(1000/$6) with linespoints lw 1.5 dt 4 pt 8 lc rgb '#6a040f' title 'OpenSSL limit: seal', \
                 rows('tcp', '-', 'tcp', metric) using 4:(1000/$6) with linespoints lw 1.5 dt 3 pt 6 lc rgb '#555555' title 'plain TCP (libuv)'
        }
    }
}
unset multiplot
