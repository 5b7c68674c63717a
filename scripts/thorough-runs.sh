#!/usr/bin/env bash
# The correct node under the default `splitbrain test` (`--nemesis thorough`), one run per
# seed: prints per seed the exit code (0 valid, 1 invalid, 2 unknown, 3 cluster check failed),
# the leader strikes (aimed kills/pauses/isolations of a leader, each forcing a new election),
# the final term, the snapshots taken and what the nemesis struck; then a tally.
#
# Usage: scripts/thorough-runs.sh [FIRST_SEED [LAST_SEED]]     (default: 1 5)
# Environment: RESULTS (results/thorough-runs), SPLITBRAIN (target/release/splitbrain),
#              ARGS (extra `splitbrain test` flags, e.g. "--time-limit 30").
set -u
cd "$(dirname "$0")/.."
FIRST=${1:-1}
LAST=${2:-5}
RESULTS=${RESULTS:-results/thorough-runs}
BIN=${SPLITBRAIN:-target/release/splitbrain}
ARGS=${ARGS:-}
if [ ! -x "$BIN" ]; then
    cargo build --release -p splitbrain >&2 || exit 255
fi
mkdir -p "$RESULTS"
valid=0
total=0
echo "| seed | exit | leader strikes | final term | snapshots | nemesis struck |"
echo "|---|---|---|---|---|---|"
for seed in $(seq "$FIRST" "$LAST"); do
    name="thorough-seed$seed"
    # shellcheck disable=SC2086
    "$BIN" test --seed "$seed" --name "$name" --results "$RESULTS" $ARGS \
        >"$RESULTS/$name.out" 2>&1
    code=$?
    total=$((total + 1))
    [ "$code" = 0 ] && valid=$((valid + 1))
    dir=$(ls -d "$RESULTS/$name"/*/ 2>/dev/null | tail -1)
    strikes=$(grep -c '"f":"aim-\(kill\|pause\|isolate\)"' "$dir/history.jsonl" 2>/dev/null)
    voters=$(grep '"f":"aim-kill"' "$dir/history.jsonl" 2>/dev/null | grep -c '"voting":true')
    strikes=$((strikes - voters))
    term=$(grep -o '"term": *[0-9]*' "$dir/results.json" 2>/dev/null | tr -dc '0-9\n' | sort -n | tail -1)
    snaps=$(cat "$dir"/nodes/*.log 2>/dev/null | grep -c 'snapshot taken')
    struck=$(grep '^nemesis struck' "$RESULTS/$name.out" | sed 's/^nemesis struck *//')
    echo "| $seed | $code | $strikes | ${term:-?} | $snaps | $struck |"
done
echo
echo "$valid/$total valid"
