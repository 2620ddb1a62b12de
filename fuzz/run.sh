#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 15), starting from the
# checked-in seeds plus a working corpus in fuzz/corpus/ (not committed),
# under `nice` (FUZZ_NICE, default 10: the machine is shared).
# Ends with one table row per target: seconds, executions, corpus size,
# findings. Any finding makes the script exit non-zero (after every target
# ran); the input is in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/<what-it-found> so `cargo test` replays it.
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
nice -n "${FUZZ_NICE:-10}" cargo +nightly fuzz build -O >/dev/null
rows=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  printf '== %s (%ss)\n' "$t" "$secs"
  log="$(mktemp)"
  nice -n "${FUZZ_NICE:-10}" cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || true
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY)|panicked' "$log" || true
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  ran="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)"
  corpus="$(find "corpus/$t" -maxdepth 1 -type f | wc -l)"
  found="$(find "artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) 2>/dev/null | wc -l)"
  rm -f "$log"
  rows+=("| \`$t\` | ${ran:-?} | ${execs:-?} | $corpus | $found |")
  if [ "$found" -gt 0 ]; then
    echo "fuzz target $t found a failing input: $(ls "artifacts/$t")"
    failed=1
  fi
done
printf '\n| target | seconds | executions | corpus | findings |\n|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
exit "$failed"
