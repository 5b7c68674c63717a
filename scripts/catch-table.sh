#!/usr/bin/env bash
# Reproduces the two tables of "What Splitbrain catches" (README.md, docs/catching-bugs.md):
#
#   1. bugs:    each of the node's --bug modes under its configuration, RUNS_BUG runs
#               (seeds 1..RUNS_BUG); a bug counts as caught when the run is invalid (exit 1).
#   2. correct: the correct node under every nemesis, RUNS_OK runs each (seeds 1..RUNS_OK);
#               every run must be valid (exit 0); rows with `corrupt` also count the members
#               that refused their damaged data (the summary's "refused its data" lines).
#   3. untuned: each --bug mode under the plain default run (`splitbrain test --time-limit 30`:
#               5 nodes, the `thorough` nemesis), RUNS_BUG runs; caught = invalid (exit 1) or
#               the cluster check failed (exit 3), counted apart. Not part of `both`.
#
# Usage: scripts/catch-table.sh [bugs|correct|both|untuned]      (default: both)
# Environment: RUNS_BUG (5), RUNS_OK (20), RESULTS (results/catch-table),
#              SPLITBRAIN (target/release/splitbrain; built if missing),
#              ONLY (a regex of bug or nemesis names to run, e.g. ONLY=stale-read),
#              SEED_FROM (1: the first seed; runs use SEED_FROM, SEED_FROM+1, …).
#
# Prints one Markdown table per part; every run is stored under $RESULTS for inspection.
set -u
cd "$(dirname "$0")/.."
WHAT=${1:-both}
RUNS_BUG=${RUNS_BUG:-5}
RUNS_OK=${RUNS_OK:-20}
RESULTS=${RESULTS:-results/catch-table}
BIN=${SPLITBRAIN:-target/release/splitbrain}
ONLY=${ONLY:-.}
SEED_FROM=${SEED_FROM:-1}
if [ ! -x "$BIN" ]; then
    cargo build --release -p splitbrain >&2 || exit 255
fi

# Row → the `splitbrain test` flags that catch its bug (each run ≤ 60 s of client operations).
# The bug is the row name up to any `@` (the script adds `--node-arg=--bug --node-arg=<bug>`).
declare -A BUG_ARGS=(
    [stale-read]="--nodes 3 --time-limit 15 --workload kv --nemesis isolate-leader --nemesis-interval 3"
    [ack-before-commit]="--nodes 3 --time-limit 30 --workload kv --nemesis isolate-leader,kill --nemesis-interval 3"
    # With the proxy network, vote-any-log alone elects stale leaders but the followers' own
    # guard (never overwrite a committed entry) stops them with a panic; with that guard off
    # (no-truncate-check) the stale leader's log wins and acknowledged writes go.
    [vote-any-log@proxy]="--nodes 3 --time-limit 40 --workload kv --nemesis partition-halves,kill --nemesis-overlap --nemesis-interval 2 --node-arg=--bug --node-arg=no-truncate-check"
    # no-dedup: a network that duplicates answered writes (same request id) 0.2 s later, and
    # unique write values, so that a second application is visible (see docs/catching-bugs.md).
    [no-dedup]="--nodes 3 --time-limit 30 --workload kv --nemesis partition --nemesis-interval 3 --unique-writes --duplicate-writes 0.05 --retry-backoff 0.2"
    [commit-old-term@proxy]="--nodes 3 --time-limit 40 --workload kv --nemesis partition-halves,kill --nemesis-overlap --nemesis-interval 2"
    [no-truncate-check@proxy]="--nodes 3 --time-limit 40 --workload kv --nemesis delay,kill --nemesis-overlap --nemesis-interval 2"
    # --net message: the aimed message nemeses (docs/catching-bugs.md). The append workload,
    # because an overwritten acknowledged append stays missing whatever was written after it.
    [commit-old-term]="--net message --nodes 3 --time-limit 30 --op-timeout 10 --workload append --nemesis msg-figure8 --nemesis-interval 8"
    [vote-any-log]="--net message --nodes 3 --time-limit 30 --op-timeout 10 --workload append --nemesis msg-stale-vote --nemesis-interval 8"
    [no-truncate-check]="--net message --nodes 3 --time-limit 40 --op-timeout 10 --workload append --nemesis msg-replay,msg-reorder,kill --nemesis-overlap --nemesis-interval 3 --node-arg=--max-append-entries --node-arg=1"
    # no-fsync: power losses (faultfs under every member, needs FUSE); half of them hit every
    # member at once, which takes acknowledged writes from a node that never fdatasyncs.
    [no-fsync]="--nodes 3 --time-limit 20 --workload kv --nemesis power-loss --nemesis-interval 3 --recovery-time 3"
    # torn-tail-any-damage: bit flips aimed at the length fields of stopped members' WALs.
    [torn-tail-any-damage]="--nodes 3 --time-limit 30 --workload kv --nemesis corrupt-length --nemesis-interval 3 --recovery-time 3"
)
BUGS=(stale-read ack-before-commit vote-any-log@proxy no-dedup commit-old-term@proxy no-truncate-check@proxy commit-old-term vote-any-log no-truncate-check no-fsync torn-tail-any-damage)
NEMESES=(none kill pause partition-halves isolate-one isolate-leader majorities-ring bridge all power-loss power-loss,partition corrupt,kill)
# The correct node under the message faults (--net message).
MSG_NEMESES=(msg-loss msg-dup msg-reorder msg-replay msg-trim msg-figure8 msg-stale-vote all)
CORRECT_ARGS="--nodes 5 --time-limit 20 --workload kv --nemesis-interval 3 --recovery-time 5"

# run NAME SEED ARGS… → prints the exit code (0 valid, 1 invalid, 2 unknown, other: error)
run() {
    local name=$1 seed=$2
    shift 2
    "$BIN" test --name "$name" --seed "$seed" --results "$RESULTS" "$@" \
        >"$RESULTS/$name-seed$seed.out" 2>&1
    echo $?
}

mkdir -p "$RESULTS"
if [ "$WHAT" = bugs ] || [ "$WHAT" = both ]; then
    echo "| bug | command | invalid runs |"
    echo "|---|---|---|"
    for row in "${BUGS[@]}"; do
        [[ $row =~ $ONLY ]] || continue
        bug=${row%@*}
        args=${BUG_ARGS[$row]}
        invalid=0 other=0
        for seed in $(seq "$SEED_FROM" $((SEED_FROM + RUNS_BUG - 1))); do
            # shellcheck disable=SC2086 # word splitting of $args is intended
            code=$(run "bug-${row/@/-}" "$seed" $args --node-arg=--bug --node-arg="$bug")
            case $code in 1) invalid=$((invalid + 1)) ;; 0) ;; *) other=$((other + 1)) ;; esac
        done
        note=""
        [ "$other" -gt 0 ] && note=" ($other unknown or errors)"
        echo "| \`$row\` | \`splitbrain test $args --node-arg=--bug --node-arg=$bug --seed $SEED_FROM..$((SEED_FROM + RUNS_BUG - 1))\` | $invalid/$RUNS_BUG$note |"
    done
    echo
fi
if [ "$WHAT" = untuned ]; then
    echo "| bug | \`splitbrain test --time-limit 30\` + the bug: caught runs |"
    echo "|---|---|"
    UNTUNED=(stale-read ack-before-commit vote-any-log no-dedup commit-old-term no-truncate-check no-fsync torn-tail-any-damage)
    for bug in "${UNTUNED[@]}"; do
        [[ $bug =~ $ONLY ]] || continue
        invalid=0 cluster=0 other=0
        for seed in $(seq "$SEED_FROM" $((SEED_FROM + RUNS_BUG - 1))); do
            code=$(run "untuned-$bug" "$seed" --time-limit 30 --node-arg=--bug --node-arg="$bug")
            case $code in 1) invalid=$((invalid + 1)) ;; 3) cluster=$((cluster + 1)) ;; 0) ;; *) other=$((other + 1)) ;; esac
        done
        caught=$((invalid + cluster))
        note=""
        [ "$cluster" -gt 0 ] && note=" ($invalid invalid, $cluster cluster check)"
        [ "$other" -gt 0 ] && note="$note ($other unknown or errors)"
        echo "| \`$bug\` | $caught/$RUNS_BUG$note |"
    done
fi
if [ "$WHAT" = correct ] || [ "$WHAT" = both ]; then
    echo "| nemesis | command | valid runs |"
    echo "|---|---|---|"
    for nem in "${NEMESES[@]}"; do
        [[ $nem =~ $ONLY ]] || continue
        valid=0 bad="" refusals=0 refusing_runs=0
        for seed in $(seq "$SEED_FROM" $((SEED_FROM + RUNS_OK - 1))); do
            # shellcheck disable=SC2086
            code=$(run "correct-$nem" "$seed" $CORRECT_ARGS --nemesis "$nem")
            if [ "$code" = 0 ]; then valid=$((valid + 1)); else bad="$bad seed$seed=exit$code"; fi
            # corrupt: the summary's "member nX refused its data: FILE@OFFSET" lines.
            n=$(grep -c "refused its data" "$RESULTS/correct-$nem-seed$seed.out")
            refusals=$((refusals + n))
            [ "$n" -gt 0 ] && refusing_runs=$((refusing_runs + 1))
        done
        note=""
        [[ $nem == *corrupt* ]] && note="; $refusals members refused their data, in $refusing_runs runs"
        echo "| \`$nem\` | \`splitbrain test $CORRECT_ARGS --nemesis $nem --seed $SEED_FROM..$((SEED_FROM + RUNS_OK - 1))\` | $valid/$RUNS_OK${bad:+ (not valid:$bad)}$note |"
    done
fi
if [ "$WHAT" = correct ] || [ "$WHAT" = both ]; then
    echo
    echo "| nemesis (--net message) | command | valid runs |"
    echo "|---|---|---|"
    for nem in "${MSG_NEMESES[@]}"; do
        [[ $nem =~ $ONLY ]] || continue
        valid=0 bad=""
        for seed in $(seq "$SEED_FROM" $((SEED_FROM + RUNS_OK - 1))); do
            # shellcheck disable=SC2086
            code=$(run "correct-msg-$nem" "$seed" $CORRECT_ARGS --net message --nemesis "$nem")
            if [ "$code" = 0 ]; then valid=$((valid + 1)); else bad="$bad seed$seed=exit$code"; fi
        done
        echo "| \`$nem\` | \`splitbrain test $CORRECT_ARGS --net message --nemesis $nem --seed $SEED_FROM..$((SEED_FROM + RUNS_OK - 1))\` | $valid/$RUNS_OK${bad:+ (not valid:$bad)} |"
    done
fi
