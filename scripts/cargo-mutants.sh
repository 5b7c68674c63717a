#!/usr/bin/env bash
# cargo-mutants over the node's Raft core, state machine, WAL and server, with one of two test
# commands:
#
#   scripts/cargo-mutants.sh unit    [CARGO-MUTANTS ARGS…]   the node's own tests
#                                    (`cargo test --release -p splitbrain-node`)
#   scripts/cargo-mutants.sh harness [CARGO-MUTANTS ARGS…]   short `splitbrain test` runs
#                                    against the mutated node (scripts/cargo-mutants-harness-cargo.sh)
#   scripts/cargo-mutants.sh list    [CARGO-MUTANTS ARGS…]   list the mutants only
#
# Extra arguments go to cargo-mutants and narrow the run, e.g. `--file node/src/raft/progress.rs`,
# `--re 'commit'`, `--shard 0/20` (a full run is hours on this machine). Without a `--file`, the
# files are node/src/raft/*.rs, node/src/sm.rs, node/src/wal.rs and node/src/server.rs.
#
# Install the tool with `cargo install --locked cargo-mutants`. The run mutates a copy of the
# repository in place ($CM_DIR/src, target directory $CM_DIR/target seeded from this checkout's
# warm target/release), so this checkout is never touched and only the node crate is rebuilt
# per mutant. Results: $CM_DIR/out/mutants.out/ (outcomes.json, caught.txt, missed.txt, …).
#
# Environment: CM_DIR (/tmp/splitbrain-cargo-mutants), TIMEOUT (test timeout, s; 600 unit,
# 300 harness), HARNESS_SEEDS / HARNESS_ARGS (see cargo-mutants-harness-cargo.sh).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:?usage: cargo-mutants.sh unit|harness|list [ARGS…]}
shift
CM_DIR=${CM_DIR:-/tmp/splitbrain-cargo-mutants}
SRC=$CM_DIR/src
TGT=$CM_DIR/target
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "cargo-mutants.sh: cargo-mutants is not installed (cargo install --locked cargo-mutants)" >&2
    exit 254
fi
mkdir -p "$SRC" "$CM_DIR/out"
if [ ! -d "$TGT/release" ] && [ -d "$ROOT/target/release" ]; then
    echo "cargo-mutants.sh: seeding $TGT from $ROOT/target/release" >&2
    mkdir -p "$TGT"
    cp -a "$ROOT/target/release" "$TGT/" || exit 255
fi
tar -C "$ROOT" --exclude=./target --exclude=./results --exclude=./.git -cf - . |
    tar -C "$SRC" -xf - || exit 255

FILES=()
case " $* " in
*" --file "* | *" -f "* | *" --file="*) ;;
*) FILES=(--file 'node/src/raft/*.rs' --file node/src/sm.rs --file node/src/wal.rs
    --file node/src/server.rs) ;;
esac
COMMON=(--in-place -d "$SRC" --package splitbrain-node --output "$CM_DIR/out"
    --baseline skip "${FILES[@]}")
export CARGO_TARGET_DIR=$TGT
case $MODE in
list)
    exec cargo mutants --list "${COMMON[@]}" "$@"
    ;;
unit)
    exec cargo mutants "${COMMON[@]}" --timeout "${TIMEOUT:-600}" --build-timeout 900 \
        --cargo-arg=--release "$@"
    ;;
harness)
    # cargo-mutants runs `$CARGO test …`; the wrapper builds the mutated splitbrain-node and
    # runs the harness (this checkout's target/release/splitbrain) against it.
    if [ ! -x "$ROOT/target/release/splitbrain" ]; then
        cargo build --release -p splitbrain >&2 || exit 255
    fi
    export REAL_CARGO=${CARGO:-$(command -v cargo)}
    export HARNESS_BIN=$ROOT/target/release/splitbrain
    export HARNESS_RESULTS=$CM_DIR/out/harness-runs
    # cargo-mutants runs the cargo named by $CARGO; run through `cargo mutants`, cargo itself
    # would set CARGO to its own path, so the tool is started directly.
    export CARGO=$ROOT/scripts/cargo-mutants-harness-cargo.sh
    exec cargo-mutants mutants "${COMMON[@]}" --timeout "${TIMEOUT:-300}" --build-timeout 900 \
        --cargo-arg=--release "$@"
    ;;
*)
    echo "cargo-mutants.sh: unknown mode $MODE (unit, harness or list)" >&2
    exit 254
    ;;
esac
