# gnuplot script for docs/bench-peers.png, run by bench/peers/plot.sh from
# the peers.dat it writes: "LABEL" events/s cpu_s_per_1M peak_rss_MiB.
set terminal pngcairo size 1200,440 font "DejaVu Sans,10" noenhanced
set output out
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set grid ytics
set key off
set xtics rotate by -30 left
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set multiplot layout 1,3 title "the same backlog (pre-produced events, --until-end style), one machine, same PostgreSQL and broker"
set title "events/s (higher is better)"
plot dat using 2:xtic(1) linecolor rgb "#3b7dd8", '' using 0:2:(sprintf("%d", $2)) with labels offset 0,0.8
set title "CPU seconds per 1M events (lower is better)"
plot dat using 3:xtic(1) linecolor rgb "#d8703b", '' using 0:3:(sprintf("%.1f", $3)) with labels offset 0,0.8
set title "peak RSS, MiB (lower is better)"
plot dat using 4:xtic(1) linecolor rgb "#5aa05a", '' using 0:4:(sprintf("%d", $4)) with labels offset 0,0.8
unset multiplot
