#!/usr/bin/env bash
# Builds Keyward (release: optimised server, size-optimised WASM) and serves it on
# http://127.0.0.1:3000 with an SQLite file under ./data/. On an empty database the first
# admin is created and its sign-in printed once. Installs what is missing first.
# Settings: every KEYWARD_* variable in the README applies (e.g. KEYWARD_LISTEN).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh"

log "building (release; bundle precompressed with brotli and gzip)"
cargo leptos build --release --precompress --split

export KEYWARD_DATABASE_URL="${KEYWARD_DATABASE_URL:-sqlite://data/keyward.db}"
log "starting keyward on ${KEYWARD_LISTEN:-127.0.0.1:3000}"
exec "$CARGO_TARGET_DIR/release/keyward" serve "$@"
