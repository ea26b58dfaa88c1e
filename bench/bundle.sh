#!/usr/bin/env bash
# The console's first load on the wire (brotli), measured by Chromium against the release
# build: the HTML, CSS, JS, the main WASM and whatever chunks the page loads, then what the
# API keys page adds (bench/bundle-size.mjs). With --check, fails when the first load is over
# 300 KB (issue 7's budget).
#
#   bench/bundle.sh [--check]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
limit=""
[ "${1:-}" = "--check" ] && limit=300
log "building release (split, precompressed)"
cargo leptos build --release --precompress --split
bin="$CARGO_TARGET_DIR/release/keyward"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
KEYWARD_DATABASE_URL="sqlite://$work/b.db" KEYWARD_LOG=warn "$bin" serve --listen "127.0.0.1:$port" \
  --admin-email bench@keyward.local --admin-password "bench passphrase" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.2; done
node bench/bundle-size.mjs "http://127.0.0.1:$port" bench@keyward.local "bench passphrase" $limit
