#!/usr/bin/env bash
# Benchmarks of fargate-otel-tee (make bench-tee). Every figure is a ratio
# against a reference run by this script, on the same data and machine, in
# alternating rounds (the machine is shared and noisy):
#
#   raw mode throughput      vs  coreutils tee doing the same job (cat data | tee file)
#   CRI mode throughput      vs  cat through a pipe, the limit (cat data | cat)
#   order inversions         vs  the shell pipeline cmd 1> >(tee out.log >&1) 2> >(tee err.log >&2),
#                                at 1 ms spacing and flat out
#   rate limit on, not hit   vs  no rate limit (CRI mode, same runs; and the framing
#                                microbenchmark, go test -bench Framing ./tee)
#   CPU per million lines    vs  coreutils tee (app 2>&1 | tee -a file), with the app of
#     at the bill's pace         make bench-bill: 100-byte lines at 20,000/s and 1,000-byte
#                                lines at 5,000/s, alternating stdout and stderr, flushed
#                                every ms, its output read from pipes as containerd reads it
#   binary size, peak RSS    vs  the goals (3 MB, 8 MiB)
#
# Variables: BENCH_TEE_SIZE (default 1Gi of 100-byte lines; 64Mi for a quick
# run), BENCH_TEE_ROUNDS (3), BENCH_TEE_ORDER_LINES (200000 lines flat out),
# BENCH_TEE_SPACED_LINES (2000 lines 1 ms apart), BENCH_TEE_PACED_SECONDS (5: the
# length of each paced CPU run), BENCH_TEE_DIR (work folder,
# default a folder in /dev/shm, removed at the end), GO (go).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZE=${BENCH_TEE_SIZE:-1Gi}
ROUNDS=${BENCH_TEE_ROUNDS:-3}
ORDER_LINES=${BENCH_TEE_ORDER_LINES:-200000}
SPACED_LINES=${BENCH_TEE_SPACED_LINES:-2000}
PACED_SECONDS=${BENCH_TEE_PACED_SECONDS:-5}
GO=${GO:-go}
if [[ -z "${BENCH_TEE_DIR:-}" ]]; then
	if [[ -d /dev/shm && -w /dev/shm ]]; then BENCH_TEE_DIR=/dev/shm/fargate-otel-bench-tee.$$; else BENCH_TEE_DIR=$ROOT/.cache/bench-tee.$$; fi
fi
WORK=$BENCH_TEE_DIR
OUT=${BENCH_TEE_OUT:-$ROOT/_artifacts/bench-tee.txt}
mkdir -p "$WORK" "$(dirname "$OUT")"
trap 'rm -rf "$WORK"' EXIT

TEE=$WORK/fargate-otel-tee
TOOL=$WORK/benchtool
DATA=$WORK/data
LOGS=$WORK/logs
ID=(--log-dir "$LOGS" --namespace bench --pod tee --pod-uid 0000-1111 --container app)
CDIR=$LOGS/bench_tee_0000-1111/app
# The same job as tee's: everything written is kept (rotated at the default
# 10Mi, none deleted during the run; tee's file is deleted after its run too).
KEEP=(--max-backups 100000 --budget 1000Gi)
# A rate limit far above anything the runs reach: its cost when it is not hit.
LIMIT=(--rate-limit-lines 1000000000 --rate-limit-bytes 1000Gi)

echo "building (static, stripped, as make build does)"
(cd "$ROOT" && CGO_ENABLED=0 GOTOOLCHAIN=local "$GO" build -trimpath -ldflags "-s -w" -o "$TEE" ./cmd/fargate-otel-tee)
(cd "$ROOT" && CGO_ENABLED=0 GOTOOLCHAIN=local "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/fargate-otel-follow" ./cmd/fargate-otel-tee/follow)
(cd "$ROOT" && GOTOOLCHAIN=local "$GO" build -o "$TOOL" ./bench/tee/benchtool)
echo "making $SIZE of 100-byte lines in $WORK"
"$TOOL" gen "$SIZE" "$DATA"
BYTES=$(stat -c %s "$DATA")

fresh_logs() { rm -rf "$LOGS"; mkdir -p "$LOGS"; }

# run NAME CMD...: time a command (stdout to /dev/null), append "seconds cpu hwm" to $WORK/NAME.
run() {
	local name=$1
	shift
	"$TOOL" time "$WORK/last" -- "$@" >/dev/null
	# seconds=.. cpu_seconds=.. hwm_kib=.. maxrss_kib=..
	sed -E 's/seconds=([0-9.]+) cpu_seconds=([0-9.]+) hwm_kib=([0-9]+).*/\1 \2 \3/' "$WORK/last" >>"$WORK/$name"
}
best() { sort -n -k"$2" "$WORK/$1" | head -1 | cut -d' ' -f"$2"; }
maxof() { sort -n -k"$2" "$WORK/$1" | tail -1 | cut -d' ' -f"$2"; }
lost() { cat "$WORK"/*.err 2>/dev/null | awk '/log lines lost in total/ { for (i = 1; i <= NF; i++) if ($i ~ /^lines=/) { sub("lines=", "", $i); n += $i } } END { print n + 0 }'; }

echo "throughput: $ROUNDS rounds of 5 runs on $BYTES bytes"
rm -f "$WORK"/{cat,cri,crilim,tee,raw,file}
for r in $(seq "$ROUNDS"); do
	run cat bash -c "cat '$DATA' | cat >/dev/null"
	fresh_logs
	run cri "$TEE" "${ID[@]}" "${KEEP[@]}" -- cat "$DATA" 2>"$WORK/cri.$r.err"
	fresh_logs
	run crilim "$TEE" "${ID[@]}" "${KEEP[@]}" "${LIMIT[@]}" -- cat "$DATA" 2>"$WORK/crilim.$r.err"
	if grep -q "rate limit is reached" "$WORK/crilim.$r.err"; then echo "the rate limit of the limit-on run was hit: raise LIMIT" >&2; exit 1; fi
	run tee bash -c "cat '$DATA' | tee '$WORK/tee.out' >/dev/null"
	rm -f "$WORK/tee.out"
	fresh_logs
	run raw "$TEE" "${ID[@]}" "${KEEP[@]}" --format raw -- cat "$DATA" 2>"$WORK/raw.$r.err"
	run file bash -c "cat '$DATA' | cat >'$WORK/cat.out'"
	rm -f "$WORK/cat.out"
	echo "  round $r done"
done
fresh_logs
LOST=$(lost)

# inversions NAME SPACING LINES: order inversions in the CRI file, ours and the shell pipeline
# (recorded by one reader, ours, playing the container runtime).
order() {
	local spacing=$1 lines=$2 who=$3
	fresh_logs
	if [[ $who == ours ]]; then
		"$TEE" "${ID[@]}" --max-size 1Gi -- "$TOOL" seq "$lines" "$spacing" >/dev/null 2>&1
	else
		mkdir -p "$WORK/sh"
		"$TEE" "${ID[@]}" --max-size 1Gi -- bash -c "'$TOOL' seq $lines $spacing 1> >(tee '$WORK/sh/out.log' >&1) 2> >(tee '$WORK/sh/err.log' >&2); wait" >/dev/null 2>&1
	fi
	"$TOOL" inversions "$CDIR/0.log" | sed -E 's/.*inversions=([0-9]+).*/\1/'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "ordering: $ROUNDS rounds, $SPACED_LINES lines 1 ms apart and $ORDER_LINES lines flat out"
: >"$WORK/o.spaced.ours"; : >"$WORK/o.spaced.shell"; : >"$WORK/o.flat.ours"; : >"$WORK/o.flat.shell"
for r in $(seq "$ROUNDS"); do
	order 1ms "$SPACED_LINES" ours >>"$WORK/o.spaced.ours"
	order 1ms "$SPACED_LINES" shell >>"$WORK/o.spaced.shell"
	order 0 "$ORDER_LINES" ours >>"$WORK/o.flat.ours"
	order 0 "$ORDER_LINES" shell >>"$WORK/o.flat.shell"
done

# paced SIZE RATE: CPU-seconds per million lines of the wrapper and of coreutils tee,
# best of the rounds (the machine is shared: the least disturbed run).
echo "CPU per million lines at the bill's pace: $ROUNDS rounds of $PACED_SECONDS s each"
: >"$WORK/p.100.ours"; : >"$WORK/p.100.tee"; : >"$WORK/p.1000.ours"; : >"$WORK/p.1000.tee"
paced() {
	local size=$1 rate=$2 lines=$(( $2 * PACED_SECONDS ))
	fresh_logs
	"$TOOL" pacedcpu "$size" "$lines" "$rate" -- "$TEE" "${ID[@]}" -- | sed -E 's/cpu_s_per_mline=([0-9.]+).*/\1/' >>"$WORK/p.$size.ours"
	"$TOOL" pacedcpu "$size" "$lines" "$rate" -- bash -c '"$@" 2>&1 | tee -a "$0"' "$WORK/tee.out" | sed -E 's/cpu_s_per_mline=([0-9.]+).*/\1/' >>"$WORK/p.$size.tee"
	rm -f "$WORK/tee.out"
}
for r in $(seq "$ROUNDS"); do
	paced 100 20000
	paced 1000 5000
done
fresh_logs
minof() { sort -n "$1" | head -1; }
P100O=$(minof "$WORK/p.100.ours"); P100T=$(minof "$WORK/p.100.tee")
P1000O=$(minof "$WORK/p.1000.ours"); P1000T=$(minof "$WORK/p.1000.tee")

echo "framing microbenchmark: rate limit off and on (not hit), $ROUNDS counts"
(cd "$ROOT" && GOTOOLCHAIN=local "$GO" test -run '^$' -bench 'BenchmarkFraming/cri' -benchtime 20000x -count "$ROUNDS" ./tee) >"$WORK/framing.txt"
# median ns/op of a sub-benchmark
F_OFF=$(awk '$1 ~ /^BenchmarkFraming\/cri-[0-9]+$/ { print $3 }' "$WORK/framing.txt" | median)
F_ON=$(awk '$1 ~ /^BenchmarkFraming\/cri-limit-not-hit-[0-9]+$/ { print $3 }' "$WORK/framing.txt" | median)

SIZE_BYTES=$(stat -c %s "$TEE")
FOLLOW_BYTES=$(stat -c %s "$WORK/fargate-otel-follow")
RSS=$(( $(maxof cri 3) > $(maxof raw 3) ? $(maxof cri 3) : $(maxof raw 3) ))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
verdict() { awk -v v="$1" -v g="$2" -v dir="$3" 'BEGIN { ok = (dir == "ge") ? v >= g : (dir == "lt") ? v < g : v <= g; print ok ? "met" : "MISSED" }'; }
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; }

SO=$(median <"$WORK/o.spaced.ours"); SS=$(median <"$WORK/o.spaced.shell")
FO=$(median <"$WORK/o.flat.ours"); FS=$(median <"$WORK/o.flat.shell")
R_RAW=$(awk -v a="$(best tee 1)" -v b="$(best raw 1)" 'BEGIN { print a / b }')
R_CRI=$(awk -v a="$(best cat 1)" -v b="$(best cri 1)" 'BEGIN { print a / b }')
R_LIM=$(awk -v a="$(best cri 1)" -v b="$(best crilim 1)" 'BEGIN { print a / b }')

{
	echo "fargate-otel-tee benchmark: $SIZE of 100-byte lines ($BYTES bytes), best of $ROUNDS rounds, in $WORK"
	echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
	echo
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' figure ours reference ratio goal verdict
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "raw mode vs coreutils tee (wall time)" "$(best raw 1) s $(mbps "$(best raw 1)")" "$(best tee 1) s $(mbps "$(best tee 1)")" "$(ratio "$(best tee 1)" "$(best raw 1)")" ">= 1.0x" "$(verdict "$R_RAW" 1.0 ge)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "  same, CPU time of the whole job" "$(best raw 2) s" "$(best tee 2) s" "$(ratio "$(best tee 2)" "$(best raw 2)")" "" ""
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "CRI mode vs cat through a pipe (wall time)" "$(best cri 1) s $(mbps "$(best cri 1)")" "$(best cat 1) s $(mbps "$(best cat 1)")" "$(ratio "$(best cat 1)" "$(best cri 1)")" ">= 0.5x" "$(verdict "$R_CRI" 0.5 ge)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "  same, CPU time of the whole job" "$(best cri 2) s" "$(best cat 2) s" "$(ratio "$(best cat 2)" "$(best cri 2)")" "" ""
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "  CRI mode vs cat | cat > file (wall time)" "$(best cri 1) s" "$(best file 1) s" "$(ratio "$(best file 1)" "$(best cri 1)")" "" "(the floor of any tool that writes the file)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "rate limit on, not hit, vs off (wall time)" "$(best crilim 1) s" "$(best cri 1) s" "$(ratio "$(best cri 1)" "$(best crilim 1)")" ">= 0.9x" "$(verdict "$R_LIM" 0.9 ge)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "  same, CPU time of the whole job" "$(best crilim 2) s" "$(best cri 2) s" "$(ratio "$(best cri 2)" "$(best crilim 2)")" "" ""
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "  framing only (go bench, ns per 64 KiB)" "$F_ON ns" "$F_OFF ns" "$(ratio "$F_OFF" "$F_ON")" "" "(the limit's own cost per line; off is the unchanged path)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "CPU-s per million 100-byte lines, 20k/s" "$P100O" "$P100T (coreutils tee)" "$(ratio "$P100O" "$P100T")" "" "(the wrapper's share of make bench-bill)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "CPU-s per million 1,000-byte lines, 5k/s" "$P1000O" "$P1000T (coreutils tee)" "$(ratio "$P1000O" "$P1000T")" "" ""
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "order inversions, 1 ms spacing (median)" "$SO" "$SS (shell)" "" "0" "$(verdict "$SO" 0 le)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "order inversions, flat out (median)" "$FO" "$FS (shell)" "$(ratio "$FO" "$(( FS > 0 ? FS : 1 ))")" "< shell" "$(verdict "$FO" "$FS" lt)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "binary size (static, stripped)" "$SIZE_BYTES bytes" "3000000 bytes" "$(ratio "$SIZE_BYTES" 3000000)" "<= 3 MB" "$(verdict "$SIZE_BYTES" 3000000 le)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "  follower binary (not copied into pods)" "$FOLLOW_BYTES bytes" "$SIZE_BYTES bytes (tee)" "$(ratio "$FOLLOW_BYTES" "$SIZE_BYTES")" "" "(its TLS client; the image holds both)"
	printf '%-44s %-22s %-22s %-8s %-9s %s\n' "peak RSS during the throughput runs (VmHWM)" "$RSS KiB" "8192 KiB" "$(ratio "$RSS" 8192)" "<= 8 MiB" "$(verdict "$RSS" 8192 le)"
	echo
	echo "lines the wrapper lost during the throughput runs: ${LOST:-0} (rotated at 10Mi, every file kept, as tee keeps its file)"
	echo "inversions: pairs of lines out of sequence order in the CRI file; the shell pipeline's output is"
	echo "recorded by fargate-otel-tee playing the container runtime (one reader), which is the best case for it."
	echo "rounds (seconds cpu_seconds hwm_kib):"
	for n in cat cri crilim tee raw file; do echo "  $n: $(tr '\n' ';' <"$WORK/$n")"; done
	echo "  paced CPU-s per million lines, 100 B ours/tee: $(tr '\n' ' ' <"$WORK/p.100.ours")/ $(tr '\n' ' ' <"$WORK/p.100.tee"); 1000 B: $(tr '\n' ' ' <"$WORK/p.1000.ours")/ $(tr '\n' ' ' <"$WORK/p.1000.tee")"
	echo "  inversions 1 ms ours/shell: $(tr '\n' ' ' <"$WORK/o.spaced.ours")/ $(tr '\n' ' ' <"$WORK/o.spaced.shell")"
	echo "  inversions flat ours/shell: $(tr '\n' ' ' <"$WORK/o.flat.ours")/ $(tr '\n' ' ' <"$WORK/o.flat.shell")"
} | tee "$OUT"
