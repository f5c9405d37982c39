# chart.gp - ns per operation by allocator and workload (bench/run.sh).
# gnuplot -e "dir='bench/out'; machine='...'" bench/chart.gp
if (!exists("dir")) dir = "bench/out"
if (!exists("machine")) machine = ""
native = dir . "/chart-native.dat"
nif = dir . "/chart-nif.dat"
has_nif = system("test -s " . nif . " && echo 1 || echo 0") + 0

set terminal pngcairo size 1600, (has_nif ? 1300 : 800) font "DejaVu Sans,11"
set output dir . "/chart.png"
set datafile missing "?"
set style data histogram
set style histogram clustered gap 1.5
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y
set grid ytics mytics
set ylabel "ns per operation (median, log scale; lower is better)"
set key outside right top vertical
set xtics rotate by -30 noenhance
set key noenhance
set yrange [1:*]

# One colour per allocator, the same in both panels.
nat_colors = "#1f4e99 #5b8fd6 #a9c7ef #2ca02c #ff7f0e #8c564b #d62728 #555555 #9467bd #17becf"
nif_colors = "#e377c2 #ff7f0e #1f4e99 #5b8fd6 #2ca02c #d62728"

if (has_nif) set multiplot layout 2, 1

set title "Native (no VM): every allocator through the same beamalloc vtable\n" . machine noenhance
plot for [i=2:11] native using i:xtic(1) title columnheader(i) lc rgb word(nat_colors, i-1)

if (has_nif) {
	set title "Inside erl (NIF): raw enif\\_alloc vs libbeamalloc over the BEAM base; normal and dirty CPU scheduler" noenhance
	plot for [i=2:7] nif using i:xtic(1) title columnheader(i) lc rgb word(nif_colors, i-1)
	unset multiplot
}
