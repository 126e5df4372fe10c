# gnuplot script for the demo's two pictures, run by scripts/demo.sh:
#   gnuplot -e "sites='S.tsv'; lat='L.tsv'; out='DIR'" scripts/demo_plots.gp
# sites: "minute<TAB>site...<TAB>" header, then per minute the events of each
# of the top sites (from the rollup camera_events_minute); lat: per bucket of
# camjoin_end_to_end_latency_seconds, "upper bound ms<TAB>messages".
set terminal pngcairo size 900,500 font "DejaVu Sans,11" noenhanced
set grid ytics
set datafile separator "\t"

set output out.'/demo-events-per-minute.png'
set title "Events per minute by site (camera_events_minute, top 5 sites)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "events"
set xlabel "minute (UTC)"
set key outside right top
set yrange [0:*]
ncol = system("head -n 1 '".sites."' | awk -F'\t' '{ print NF }'")
plot for [i=2:ncol] sites using i:xtic(1) title columnheader(i)

set output out.'/demo-latency.png'
set title "End-to-end latency, producer send to COMMIT (camjoin's histogram)"
set style histogram clustered gap 1
set ylabel "messages"
set xlabel "at most, ms"
unset key
set logscale y
set yrange [0.8:*]
plot lat using 2:xtic(1) title "messages" linecolor rgb "#3060c0"
