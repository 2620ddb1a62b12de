#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 15), starting from the
# checked-in seeds plus a working corpus in fuzz/corpus/ (not committed).
# A crash stops the script non-zero; the input is in fuzz/artifacts/<target>/:
# copy it to fuzz/regressions/<target>/<what-it-found> so `cargo test` replays it.
#
#   fuzz/run.sh            # CI: every target briefly
#   fuzz/run.sh 600        # soak: ten minutes each
#   fuzz/run.sh 60 jwt_compact   # one target
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-15}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  printf '== %s (%ss)\n' "$t" "$secs"
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY)|panicked' || true
  if ls "artifacts/$t"/crash-* "artifacts/$t"/timeout-* "artifacts/$t"/oom-* >/dev/null 2>&1; then
    echo "fuzz target $t found a failing input: $(ls artifacts/$t)"
    exit 1
  fi
done
