#!/usr/bin/env bash
# Instructions per request under callgrind, for `portcullis serve` or the
# bare hyper baseline: steadier than CPU time on a busy machine.
#
#   server/scripts/callgrind_bench.sh portcullis     # or: bare
#   ENDPOINT=ext-authz server/scripts/callgrind_bench.sh portcullis
#
# ENDPOINT (forward-auth or ext-authz) picks the question and its headers;
# the bare server gets the same request, so the two parse the same head.
# One worker thread; wrk (4 connections) warms up, callgrind's counters are
# zeroed, wrk runs 5 s, the counters are dumped and divided by the requests
# wrk completed. Needs valgrind and wrk. Leaves callgrind.NAME.* in $OUT
# (default: a temporary directory) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:-portcullis}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p portcullis-server --bin portcullis --example bare_hyper --example bench_fixture
bin="$CARGO_TARGET_DIR/release"
out=${OUT:-$(mktemp -d)}
work="$out/fixture"
mkdir -p "$work"
key=$("$bin/examples/bench_fixture" "$work")
case "$name" in
  bare) cmd=("$bin/examples/bare_hyper" 127.0.0.1:0) ;;
  portcullis) cmd=("$bin/portcullis" serve --policy "$work/policy.yaml" --static-keys "$work/keys.json"
                   --store "sqlite://$work/keys.db" --listen 127.0.0.1:0 --no-watch) ;;
  *) echo "usage: $0 portcullis|bare" >&2; exit 1 ;;
esac
TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$name.%p" \
  "${cmd[@]}" >"$out/$name.stdout" 2>"$out/$name.stderr" &
vpid=$!
trap 'kill $vpid 2>/dev/null || true' EXIT
addr=
for _ in $(seq 1 600); do
  addr=$(sed -n 's|^listening on http://||p' "$out/$name.stdout" | head -n1)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "$name did not start" >&2; cat "$out/$name.stderr" >&2; exit 1; }
. server/scripts/bench_request.sh
url="http://$addr$path"
if [ "$name" = portcullis ]; then
  # The decision must be an allow, or we would measure denials.
  check=$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "$url")
  [ "$check" = 200 ] || { echo "the benchmark request is not allowed (HTTP $check)" >&2; exit 1; }
fi
wrk -t1 -c4 -d3s "${headers[@]}" "$url" >/dev/null
callgrind_control -z "$vpid" >/dev/null 2>&1
n=$(wrk -t1 -c4 -d5s "${headers[@]}" "$url" | awk '/requests in/ {print $1}')
callgrind_control -d "$vpid" >/dev/null 2>&1
sleep 1
file=$(ls -t "$out/callgrind.$name."* | head -n1)
total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$name ${ENDPOINT:-forward-auth}: $n requests, $((total / n)) instructions per request ($file)"
