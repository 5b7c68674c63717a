#!/usr/bin/env bash
# Stands in for `cargo` under cargo-mutants (scripts/cargo-mutants.sh harness): the mutant's
# "tests" are short `splitbrain test` runs instead of `cargo test`.
#
#   cargo test --no-run …   → builds the mutated tree's splitbrain-node (release)
#   cargo test …            → builds it if needed, then runs $HARNESS_BIN test $HARNESS_ARGS for
#                             each seed in $HARNESS_SEEDS with SPLITBRAIN_EXE pointing at it;
#                             exit 1 (caught) when a run is not valid (invalid, unknown, or
#                             the cluster could not run), 0 (missed) when every run is valid
#   anything else           → the real cargo ($REAL_CARGO)
#
# Environment (set by cargo-mutants.sh): REAL_CARGO, HARNESS_BIN, HARNESS_RESULTS,
# CARGO_TARGET_DIR; HARNESS_SEEDS ("1"), HARNESS_ARGS ("--time-limit 30").
set -u
REAL=${REAL_CARGO:?REAL_CARGO is not set}
if [ "${1:-}" != test ]; then
    exec "$REAL" "$@"
fi
"$REAL" build --release -q -p splitbrain-node || exit 101
case " $* " in
*" --no-run "*) exit 0 ;;
esac
TGT=${CARGO_TARGET_DIR:?CARGO_TARGET_DIR is not set}
WRAP=$TGT/splitbrain-mutant
cat >"$WRAP" <<EOF
#!/bin/sh
[ "\$1" = node ] && shift
exec "$TGT/release/splitbrain-node" "\$@"
EOF
chmod +x "$WRAP"
mkdir -p "${HARNESS_RESULTS:-/tmp/splitbrain-cargo-mutants/out/harness-runs}"
caught=0
for s in ${HARNESS_SEEDS:-1}; do
    # shellcheck disable=SC2086
    SPLITBRAIN_EXE=$WRAP "$HARNESS_BIN" test --seed "$s" \
        --results "${HARNESS_RESULTS:-/tmp/splitbrain-cargo-mutants/out/harness-runs}" \
        ${HARNESS_ARGS:---time-limit 30}
    rc=$?
    echo "harness seed $s: exit $rc"
    [ $rc -ne 0 ] && caught=1
done
exit $caught
