#!/usr/bin/env bash
# Measures what a Portcullis decision costs over HTTP, next to a bare hyper
# server that answers 200 to everything (server/examples/bare_hyper.rs), the
# two run alternately in the same session under the same wrk load.
#
# Reports, per run: requests per second, p50 and p99 latency (wrk, at
# CONNECTIONS connections), and the server's CPU time per request
# (user + system from /proc/PID/stat before and after the run, divided by the
# requests wrk completed; also each on its own). Release builds.
#
#   server/scripts/http_bench.sh                 # forward-auth, 64 connections, 3 rounds of 10s
#   ENDPOINT=ext-authz ROUNDS=5 server/scripts/http_bench.sh
#   BEFORE=/tmp/portcullis.old server/scripts/http_bench.sh   # also an older build, as `before`
#
# Needs wrk (apt-get install wrk) and Linux /proc.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
ENDPOINT=${ENDPOINT:-forward-auth}
# PIN=1: servers on CPU 1 (one worker thread), wrk on CPU 0, so client and
# server do not take turns on the same cores (needs 2+ CPUs).
PIN=${PIN:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p portcullis-server --bin portcullis --example bare_hyper --example bench_fixture
bin="$CARGO_TARGET_DIR/release"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

key=$("$bin/examples/bench_fixture" "$work")

# Starts a server, waits for its `listening on http://ADDR` line; sets $pid and $addr.
start() {
  local name=$1; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 200); do
    addr=$(sed -n 's|^listening on http://||p' "$work/$name.out" | head -n1)
    [ -n "$addr" ] && return 0
    sleep 0.05
  done
  echo "$name did not start:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

srv=() cli=()
if [ "$PIN" = 1 ]; then
  srv=(env TOKIO_WORKER_THREADS=1 taskset -c 1)
  cli=(taskset -c 0)
fi

start portcullis "${srv[@]}" "$bin/portcullis" serve --policy "$work/policy.yaml" --static-keys "$work/keys.json" \
  --store "sqlite://$work/keys.db" --listen 127.0.0.1:0 --no-watch
p_pid=$pid p_addr=$addr
start bare "${srv[@]}" "$bin/examples/bare_hyper" 127.0.0.1:0
b_pid=$pid b_addr=$addr
BEFORE=${BEFORE:-}
if [ -n "$BEFORE" ]; then
  start before "${srv[@]}" "$BEFORE" serve --policy "$work/policy.yaml" --static-keys "$work/keys.json" \
    --store "sqlite://$work/keys2.db" --listen 127.0.0.1:0 --no-watch
  o_pid=$pid o_addr=$addr
fi

. server/scripts/bench_request.sh

# The decision must be an allow, or we would measure denials.
check=$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "http://$p_addr$path")
[ "$check" = 200 ] || { echo "the benchmark request is not allowed (HTTP $check)" >&2; exit 1; }

hz=$(getconf CLK_TCK)
# utime and stime, in clock ticks (fields 14 and 15; the name field has no spaces here).
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

results="$work/results"
run() {
  local name=$1 pid=$2 addr=$3
  "${cli[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${headers[@]}" "http://$addr$path" >/dev/null
  local u0 s0 u1 s1 out
  read -r u0 s0 < <(ticks "$pid")
  out=$("${cli[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${headers[@]}" "http://$addr$path")
  read -r u1 s1 < <(ticks "$pid")
  local n rps p50 p99 bad cpu user sys
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
  per_req() { awk -v d="$1" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}'; }
  user=$(per_req $((u1 - u0)))
  sys=$(per_req $((s1 - s0)))
  cpu=$(per_req $((u1 - u0 + s1 - s0)))
  printf '%-11s %10s req/s   p50 %9s   p99 %9s   cpu %7s us/req (user %s, sys %s)   non-2xx %s\n' \
    "$name" "$rps" "$p50" "$p99" "$cpu" "$user" "$sys" "$bad"
  echo "$name $rps $cpu $user $sys" >>"$results"
  if [ "$bad" != 0 ]; then
    echo "  WARNING: $bad answers were not 2xx: this run did not measure allowed decisions" >&2
  fi
}

echo "endpoint $ENDPOINT, $CONNECTIONS connections, $THREADS wrk threads, $ROUNDS rounds of $DURATION, $(nproc) CPUs, pinned: $PIN"
for r in $(seq 1 "$ROUNDS"); do
  run bare "$b_pid" "$b_addr"
  run portcullis "$p_pid" "$p_addr"
  if [ -n "$BEFORE" ]; then run before "$o_pid" "$o_addr"; fi
done

awk '
  { rps[$1] += $2; cpu[$1] += $3; user[$1] += $4; sys[$1] += $5; n[$1]++ }
  END {
    printf "\nmean over %d rounds:\n", n["bare"]
    for (k in n) printf "  %-11s %10.0f req/s   %7.2f us CPU/req (user %.2f, sys %.2f)\n", k, rps[k] / n[k], cpu[k] / n[k], user[k] / n[k], sys[k] / n[k]
    printf "  decision overhead: %.2f us CPU per request, %.0f%% of bare req/s\n", cpu["portcullis"] / n["portcullis"] - cpu["bare"] / n["bare"], 100 * rps["portcullis"] / rps["bare"]
    if (n["before"]) printf "  before:            %.2f us CPU per request, %.0f%% of bare req/s\n", cpu["before"] / n["before"] - cpu["bare"] / n["bare"], 100 * rps["before"] / rps["bare"]
  }' "$results"
# A single round can swing by several µs on a shared VM: the median of the
# rounds' own differences (each Portcullis round against the bare round run
# just before it) is less moved by one bad round than the difference of means.
awk '
  $1 == "bare" { b = $3; brps = $2 }
  $1 == "portcullis" { d[++n] = $3 - b; r[n] = 100 * $2 / brps }
  function median(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END { if (n) printf "  median of the %d rounds: %.2f us CPU per request over bare, %.0f%% of bare req/s\n", n, median(d, n), median(r, n) }' "$results"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
