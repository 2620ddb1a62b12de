#!/usr/bin/env bash
# Instructions per JWT decision besides the signature, per algorithm, under
# callgrind (load-independent): `jwt_cost ALG diff N` runs N decisions
# (cache off) then N bare signature checks of the same token and key in one
# process, and this prints both per operation and their difference, with
# the cache hit (`hit` mode) beside them.
#
#   bench/scripts/jwt_instructions.sh              # every algorithm, 300 each
#   N=1000 bench/scripts/jwt_instructions.sh HS256 RS256
#
# Needs valgrind. Release build of bench/examples/jwt_cost.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-300}
algs=("$@")
[ ${#algs[@]} -gt 0 ] || algs=(HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA)
cargo build --release -q -p portcullis-bench --example jwt_cost
bin=${CARGO_TARGET_DIR:-target}/release/examples/jwt_cost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Inclusive instructions of one function of a callgrind profile.
inclusive() {
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
    awk -v f="jwt_cost::$2 " '!done && index($0, f "[") { gsub(",", "", $1); print $1; done = 1 }'
}
printf '%-6s %14s %14s %12s %12s\n' alg decide bare_sig "decide-sig" cache_hit
for a in "${algs[@]}"; do
  valgrind --tool=callgrind --callgrind-out-file="$out/diff" --toggle-collect='jwt_cost::run_*' \
    "$bin" "$a" diff "$N" >/dev/null 2>&1
  valgrind --tool=callgrind --callgrind-out-file="$out/hit" --toggle-collect='jwt_cost::run*' \
    "$bin" "$a" hit "$N" >/dev/null 2>&1
  full=$(inclusive "$out/diff" run_full)
  bare=$(inclusive "$out/diff" run_bare)
  hit=$(callgrind_annotate "$out/hit" 2>/dev/null | awk '!done && /PROGRAM TOTALS/ { gsub(",", "", $1); print $1; done = 1 }')
  printf '%-6s %14d %14d %12d %12d\n' "$a" $((full / N)) $((bare / N)) $(((full - bare) / N)) $((hit / N))
done
