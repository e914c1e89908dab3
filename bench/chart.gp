# gnuplot script for bench/run.py: latency percentiles and delivered/s per system.
# Called as: gnuplot -e "latdat='…'; thrdat='…'; out='….png'" bench/chart.gp
set terminal pngcairo size 1100,480 font "sans,9"
set output out
set multiplot layout 1,2 title "sse-fcgi vs Nchan (loopback, servers on one core)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0
set grid ytics
set key top left
set title "publish -> receive latency (ms)"
set logscale y
set ylabel "ms (log)"
plot latdat using 2:xtic(1) title "p50", '' using 3 title "p99", '' using 4 title "p99.9"
unset logscale y
set title "delivered events/s"
set ylabel "events/s"
set format y "%.0s%c"
plot thrdat using 2:xtic(1) title "delivered/s" lc rgb "#3060a0"
unset multiplot
