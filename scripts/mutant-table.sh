#!/usr/bin/env bash
# The hand-written mutant table (docs/catching-bugs.md): every patch in scripts/mutants/ is
# applied to a copy of the node (scripts/build-mutant.sh), and README configurations are run
# against it, seeds SEED_FROM..SEED_FROM+SEEDS-1. A run counts as caught when it fails: its
# history is invalid (exit 1) or the cluster check failed (exit 3: a member exited, diverged,
# stayed behind, or two leaders of one term were seen; counted beside it as "cluster: k");
# runs whose output says a member exited on its own are counted beside it too.
#
# Usage: scripts/mutant-table.sh [MUTANT…]            (default: every scripts/mutants/*.patch)
# Environment: SEEDS (5), SEED_FROM (1), CONFIGS (a regex over the configuration names
#              below, default: all), RESULTS (results/mutant-table), MUTANT_DIR (see
#              build-mutant.sh), SPLITBRAIN (the harness binary, target/release/splitbrain;
#              built if missing), UNIT=1 (also run the node's unit tests on each mutant and
#              add a column), PREBUILT=1 (use the binaries build-mutant.sh left in
#              $MUTANT_DIR/bin/<mutant>/ instead of building).
#
# Prints one Markdown table: mutant × configuration → "caught/runs (cluster: k, exited: k)". Every run's
# output and run directory are kept under $RESULTS.
set -u
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-5}
SEED_FROM=${SEED_FROM:-1}
CONFIGS=${CONFIGS:-.}
RESULTS=${RESULTS:-results/mutant-table}
BIN=${SPLITBRAIN:-target/release/splitbrain}
UNIT=${UNIT:-0}
PREBUILT=${PREBUILT:-0}
MUTANT_DIR=${MUTANT_DIR:-/tmp/splitbrain-mutants}
if [ ! -x "$BIN" ]; then
    cargo build --release -p splitbrain >&2 || exit 255
fi
BIN=$(realpath "$BIN")

# The configurations a README reader would try (each ≤ 60 s of operations).
CONF_NAMES=(default partition-kill pause-isolate message)
declare -A CONF=(
    [default]="--time-limit 30"
    [partition-kill]="--nodes 3 --time-limit 30 --nemesis partition,kill"
    [pause-isolate]="--nodes 3 --time-limit 30 --nemesis pause,isolate-leader"
    [message]="--net message --unique-writes --time-limit 30"
)

if [ $# -gt 0 ]; then
    MUTANTS=("$@")
else
    MUTANTS=()
    for p in scripts/mutants/*.patch; do
        MUTANTS+=("$(basename "$p" .patch)")
    done
fi

mkdir -p "$RESULTS"
header="| mutant |"
sep="|---|"
[ "$UNIT" = 1 ] && header="$header unit tests |" && sep="$sep---|"
for c in "${CONF_NAMES[@]}"; do
    [[ $c =~ $CONFIGS ]] || continue
    header="$header \`test ${CONF[$c]}\` |"
    sep="$sep---|"
done
echo "$header"
echo "$sep"
for m in "${MUTANTS[@]}"; do
    if [ "$PREBUILT" = 1 ]; then
        wrapper=$MUTANT_DIR/bin/$m/splitbrain
        [ -x "$wrapper" ] || { echo "| \`$m\` | not built |"; continue; }
        row="| \`$m\` |"
    elif [ "$UNIT" = 1 ]; then
        wrapper=$(scripts/build-mutant.sh "$m" --unit)
        urc=$?
        case $urc in
        0) unit="survived" ;;
        1) unit="**caught**" ;;
        *) echo "| \`$m\` | build failed (exit $urc) |"; continue ;;
        esac
        row="| \`$m\` | $unit |"
    else
        wrapper=$(scripts/build-mutant.sh "$m") || {
            echo "| \`$m\` | build failed |"
            continue
        }
        row="| \`$m\` |"
    fi
    for c in "${CONF_NAMES[@]}"; do
        [[ $c =~ $CONFIGS ]] || continue
        invalid=0 cluster=0 exited=0 other=0 runs=0
        for ((s = SEED_FROM; s < SEED_FROM + SEEDS; s++)); do
            out="$RESULTS/$m-$c-seed$s.out"
            # shellcheck disable=SC2086
            SPLITBRAIN_EXE=$wrapper "$BIN" test --name "mutant-$m-$c" --seed "$s" \
                --results "$RESULTS" ${CONF[$c]} >"$out" 2>&1
            rc=$?
            runs=$((runs + 1))
            [ $rc -eq 1 ] && invalid=$((invalid + 1))
            [ $rc -eq 3 ] && cluster=$((cluster + 1))
            [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 3 ] && other=$((other + 1))
            grep -q "exited on its own" "$out" && exited=$((exited + 1))
            echo "$m $c seed $s: exit $rc" >&2
        done
        caught=$((invalid + cluster))
        cell="$caught/$runs"
        [ $caught -gt 0 ] && cell="**$cell**"
        [ $cluster -gt 0 ] && cell="$cell (cluster: $cluster)"
        [ $exited -gt 0 ] && cell="$cell (exited: $exited)"
        [ $other -gt 0 ] && cell="$cell (unknown/error: $other)"
        row="$row $cell |"
    done
    echo "$row"
done
