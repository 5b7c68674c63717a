#!/usr/bin/env bash
# The `check` command as users run it: one process over the 102 non-empty etcd logs of the
# Porcupine corpus, repeated whole-process runs (hyperfine, from Debian: apt-get install
# hyperfine). Prints the median wall time and the load average at the time.
#
#   scripts/bench-check-cli.sh [RUNS]      (default 10; builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
corpus=${CORPUS:-../shared/corpus/porcupine/test_data/jepsen}
command -v hyperfine >/dev/null || { echo "error: hyperfine not found (apt-get install -y hyperfine)" >&2; exit 254; }
cargo build --release -q -p splitbrain
bin=target/release/splitbrain
mapfile -t files < <(find "$corpus" -name 'etcd_*.log' -size +0 | sort)
[ "${#files[@]}" -eq 102 ] || { echo "error: expected 102 non-empty etcd logs in $corpus, found ${#files[@]}" >&2; exit 254; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Exit code 1 is the expected verdict (some logs are invalid).
hyperfine -N --warmup 2 --runs "$runs" -i --export-json "$out" \
  "$bin check --model cas-register ${files[*]}" >/dev/null
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"check, 102 etcd logs, {len(r['times'])} runs: median {r['median']*1e3:.1f} ms wall, "
      f"min {r['min']*1e3:.1f} ms, max {r['max']*1e3:.1f} ms, user {r['user']*1e3:.1f} ms")
PY
