# gnuplot script for bench/soak.py: RSS and descriptors of both sse-fcgi processes over
# the soak, Redis restarts as vertical lines (arrows set by the caller), warm-up shaded.
# Called as: gnuplot -e "dat='…'; out='….png'; ttl='…'; warmup=N; set arrow …" bench/soak.gp
# dat columns: minutes, RSS a (MB), RSS b (MB), descriptors a, descriptors b, client streams
set terminal pngcairo size 1100,560 font "sans,9"
set output out
set title ttl
set xlabel "minutes"
set ylabel "RSS (MB)"
set y2label "descriptors / open streams"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid xtics ytics
set key bottom right opaque box
set object 1 rect from graph 0, graph 0 to first warmup, graph 1 fc rgb "#eeeeee" fs solid 0.6 noborder behind
set label 1 "warm-up" at first warmup / 2, graph 0.97 center textcolor rgb "#888888"
plot NaN with lines lc rgb "#e0a040" dt 2 title "Redis restarted", \
     dat using 1:2 with lines lw 2 lc rgb "#3060a0" title "RSS server a", \
     dat using 1:3 with lines lw 2 lc rgb "#60a030" title "RSS server b", \
     dat using 1:4 axes x1y2 with lines lc rgb "#a03060" title "descriptors a", \
     dat using 1:5 axes x1y2 with lines lc rgb "#c08020" title "descriptors b", \
     dat using 1:6 axes x1y2 with lines dt 3 lc rgb "#666666" title "client streams"
