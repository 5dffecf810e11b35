#!/usr/bin/env bash
# progress.sh LABEL COMMAND [ARGS...]: runs COMMAND and, while it runs, says
# every 20 seconds how long it has been at it, so that a first build that is
# silent for minutes does not look stuck. Exits with COMMAND's status.
label=$1
shift
start=$(date +%s)
(
	while sleep 20; do
		echo "    ... ${label}: $(($(date +%s) - start))s so far"
	done
) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null' EXIT
"$@"
status=$?
kill "$ticker" 2>/dev/null
if [ "$status" -eq 0 ]; then
	echo "    ${label}: done in $(($(date +%s) - start))s"
else
	echo "    ${label}: FAILED after $(($(date +%s) - start))s (exit status $status)"
fi
exit "$status"
