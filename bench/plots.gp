# gnuplot script for docs/bench-*.png, run by bench/run.sh (phase plots)
# from the .dat files it writes next to the JSON results.
# usage: gnuplot -e "results='bench/results'; out='docs'" bench/plots.gp
set terminal pngcairo size 900,540 font "DejaVu Sans,11" noenhanced
set grid
set key top left

set output out.'/bench-latency.png'
set title "camjoin end-to-end latency (producer send to COMMIT) vs. produce rate"
set xlabel "events/s produced"
set ylabel "latency, ms"
set logscale y
set format x "%.0s%c"
plot results.'/latency.dat' using 1:2 with linespoints lw 2 title "p50", \
     '' using 1:3 with linespoints lw 2 title "p99", \
     '' using 1:4 with linespoints lw 2 title "p99.9", \
     '' using 1:5 with linespoints lw 1 dt 2 title "max"
unset logscale y

set output out.'/bench-batch-rows.png'
set title "camjoin throughput (1M events, --until-end) vs. batch.max_rows"
set xlabel "batch.max_rows"
set ylabel "rows/s written"
set logscale x
set format x "%.0s%c"
set format y "%.0s%c"
set yrange [0:*]
set offsets 0, 0, graph 0.15, 0
set xrange [500:200000]
set key bottom right
plot results.'/sweep.dat' using 1:2 with linespoints lw 2 title "camjoin (rows/s, first fetch to last commit)", \
     results.'/sweep.dat' using 1:3 with lines lw 2 dt 2 title "single-connection COPY ceiling (rows/s)"
