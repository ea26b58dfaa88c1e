#!/usr/bin/env bash
# Runs Keyward's whole test suite, installing what is missing first:
#   format and lint (ssr and hydrate) → Rust unit and HTTP tests on SQLite → the database
#   tests again on a throw-away PostgreSQL cluster → build the site (server + WASM) →
#   fuzz the REST API from its OpenAPI document (schemathesis) → Playwright journeys in
#   Debian's Chromium against the real server.
# Exits non-zero on the first failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh" --test

work="$(mktemp -d)"
cleanup() {
  "$ROOT/scripts/pg.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT

log "format (rustfmt)"
cargo +stable fmt --all --check

# Clippy comes with the machine's stable toolchain (Debian's rustc-web has none); it checks
# the host target, where the hydrate code compiles too. Its own target dir: other compiler.
log "lint: ssr"
CARGO_TARGET_DIR="$KEYWARD_CACHE/clippy" cargo +stable clippy -p keyward-server -p keyward-app --features keyward-app/ssr --all-targets -- -D warnings
log "lint: hydrate"
CARGO_TARGET_DIR="$KEYWARD_CACHE/clippy" cargo +stable clippy -p keyward-frontend -p keyward-app --features keyward-app/hydrate -- -D warnings

log "rust tests on SQLite"
cargo test -p keyward-server -p keyward-app --features keyward-app/ssr

log "database tests on PostgreSQL"
pg_url="$("$ROOT/scripts/pg.sh" start "$work/pg")"
KEYWARD_TEST_DATABASE_URL="$pg_url" cargo test -p keyward-server -p keyward-app --features keyward-app/ssr
"$ROOT/scripts/pg.sh" stop "$work/pg"

log "build the site (server + WASM)"
cargo leptos build --split

log "REST API fuzzing (schemathesis, from the OpenAPI document)"
"$ROOT/scripts/fuzz-api.sh"

log "browser journeys (Playwright, Chromium)"
export KEYWARD_BIN="$CARGO_TARGET_DIR/debug/keyward"
(cd "$ROOT/end2end" && npx playwright test)

log "all tests passed"
