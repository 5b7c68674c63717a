#!/usr/bin/env bash
# Builds the node with one hand-written mutant (scripts/mutants/<name>.patch) applied.
#
# Usage: scripts/build-mutant.sh NAME          build; prints the mutant's `splitbrain` wrapper
#        scripts/build-mutant.sh NAME --unit   also run the node's own tests on the mutant
#                                              (`cargo test --release -p splitbrain-node`);
#                                              exit 0 survived, 1 caught by the unit tests
#
# NAME `none` builds the unmutated node (the control).
#
# One source copy ($MUTANT_DIR/src, the repository without target/ and results/) is reused for
# every mutant, and one target directory ($MUTANT_DIR/target, seeded from this checkout's warm
# target/release on first use): only the node crate is rebuilt per mutant, and this checkout's
# own binaries are never overwritten. The mutant's binary is kept as
# $MUTANT_DIR/bin/NAME/splitbrain-node, next to a wrapper `splitbrain` that runs it for
# `splitbrain node …`; point the harness at it with SPLITBRAIN_EXE=<wrapper> (the harness then
# runs every member as `<wrapper> node --id … --seed …`, the same flags as the real node).
#
# Environment: MUTANT_DIR (/tmp/splitbrain-mutants).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
NAME=${1:?usage: build-mutant.sh NAME [--unit]}
MODE=${2:-}
MUTANT_DIR=${MUTANT_DIR:-/tmp/splitbrain-mutants}
SRC=$MUTANT_DIR/src
TGT=$MUTANT_DIR/target
PATCH=$ROOT/scripts/mutants/$NAME.patch
if [ "$NAME" != none ] && [ ! -f "$PATCH" ]; then
    echo "build-mutant.sh: no such mutant: $PATCH" >&2
    exit 254
fi
mkdir -p "$SRC" "$MUTANT_DIR/bin"
if [ ! -d "$TGT/release" ] && [ -d "$ROOT/target/release" ]; then
    echo "build-mutant.sh: seeding $TGT from $ROOT/target/release" >&2
    mkdir -p "$TGT"
    cp -a "$ROOT/target/release" "$TGT/" || exit 255
fi
# Refresh the source copy from this checkout (tracked files and working-tree changes).
tar -C "$ROOT" --exclude=./target --exclude=./results --exclude=./.git -cf - . |
    tar -C "$SRC" -xf - || exit 255
if [ "$NAME" != none ]; then
    (cd "$SRC" && GIT_CEILING_DIRECTORIES=$MUTANT_DIR git apply "$PATCH") || {
        echo "build-mutant.sh: $NAME.patch does not apply" >&2
        exit 255
    }
fi
restore() {
    # Put the pristine sources back so the next mutant starts clean.
    tar -C "$ROOT" -cf - node/src | tar -C "$SRC" -xf -
}
trap restore EXIT
(cd "$SRC" && CARGO_TARGET_DIR=$TGT cargo build --release -q -p splitbrain-node) >&2 || exit 255
OUT=$MUTANT_DIR/bin/$NAME
mkdir -p "$OUT"
cp "$TGT/release/splitbrain-node" "$OUT/splitbrain-node"
cat >"$OUT/splitbrain" <<EOF
#!/bin/sh
# Runs the $NAME mutant for \`splitbrain node …\` (made by scripts/build-mutant.sh).
[ "\$1" = node ] && shift
exec "$OUT/splitbrain-node" "\$@"
EOF
chmod +x "$OUT/splitbrain"
if [ "$MODE" = --unit ]; then
    (cd "$SRC" && CARGO_TARGET_DIR=$TGT cargo test --release -q -p splitbrain-node) \
        >"$OUT/unit-tests.out" 2>&1
    rc=$?
    echo "$OUT/splitbrain"
    [ $rc -eq 0 ] && exit 0
    exit 1
fi
echo "$OUT/splitbrain"
