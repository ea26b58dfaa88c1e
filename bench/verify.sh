#!/usr/bin/env bash
# Key verification hot path vs a bare axum handler, measured in one run on this machine.
#
# Starts the release `keyward` on a throw-away SQLite file, issues a key with
# `keyward create-key`, then loads with wrk (loopback only, bounded in time):
#   bare:   GET /livez            — an axum handler that does nothing (no DB, no auth)
#   verify: GET /api/v1/me        — the full /api/v1 pipeline (bearer, checksum, cached lookup,
#                                   status, IP list, scope check) with a valid key
#   refuse: GET /api/v1/me        — a key with a bad checksum (refused before any lookup)
# and prints requests/s and p99 latency of each, with the ratios verify/bare and refuse/bare.
# The machine is shared and noisy: compare the ratios, not the absolute numbers.
#
#   bench/verify.sh [seconds per run, default 10]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
duration="${1:-10}"
apt_install wrk
bin="$CARGO_TARGET_DIR/release/keyward"
[ -x "$bin" ] || { log "building release"; cargo leptos build --release --precompress --split; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export KEYWARD_DATABASE_URL="sqlite://$work/bench.db" KEYWARD_SECRET="bench-secret-bench-secret-bench-secret" KEYWARD_LOG=warn
"$bin" migrate >/dev/null
"$bin" serve --listen "127.0.0.1:$port" --admin-password "bench passphrase" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.2; done
key="$("$bin" create-key --org system --name bench --scopes keys:read)"
bad="${key:0:${#key}-1}$( [ "${key: -1}" = "A" ] && echo B || echo A )"

run() { # name, extra wrk args... → prints requests/s
  local name="$1"; shift
  wrk -t2 -c32 -d"${duration}s" --latency "$@" >"$work/$name.txt" 2>&1
  awk '/Requests\/sec/ {print $2}' "$work/$name.txt"
}
p99() { awk '$1 == "99%" {print $2}' "$work/$1.txt"; }
log "bare axum handler (${duration}s)"
bare=$(run bare "http://127.0.0.1:$port/livez")
log "verified key (${duration}s)"
verify=$(run verify -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/me")
log "bad checksum (${duration}s)"
refuse=$(run refuse -H "Authorization: Bearer $bad" "http://127.0.0.1:$port/api/v1/me")
grep -q "Non-2xx" "$work/verify.txt" && { echo "verify run got errors:" >&2; cat "$work/verify.txt" >&2; exit 1; }
printf '%-8s %10s req/s  p99 %s\n' bare "$bare" "$(p99 bare)" verify "$verify" "$(p99 verify)" refuse "$refuse" "$(p99 refuse)"
python3 - "$bare" "$verify" "$refuse" <<'PY'
import sys
bare, verify, refuse = (float(x) for x in sys.argv[1:4])
print(f"verify/bare throughput ratio: {verify / bare:.2f}")
print(f"refuse/bare throughput ratio: {refuse / bare:.2f}")
PY
