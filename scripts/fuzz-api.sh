#!/usr/bin/env bash
# Fuzzes the REST API from its own OpenAPI document with schemathesis (from PyPI, installed by
# `scripts/bootstrap.sh --test`), as an instance administrator's key holding every scope, on
# a throw-away SQLite database. Fails on any 5xx, any response that breaks the schema
# (body, status code or content type). Deterministic: the same cases every run.
#   KEYWARD_BIN (default: the debug build), KEYWARD_FUZZ_PORT (default 3290),
#   KEYWARD_FUZZ_EXAMPLES (default 25 per operation).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin="${KEYWARD_BIN:-$CARGO_TARGET_DIR/debug/keyward}"
port="${KEYWARD_FUZZ_PORT:-3290}"
st="$KEYWARD_CACHE/schemathesis/bin/st"
work="$(mktemp -d)"
export KEYWARD_DATABASE_URL="sqlite://$work/keyward.db"
unset KEYWARD_SECRET

KEYWARD_LISTEN="127.0.0.1:$port" KEYWARD_ADMIN_PASSWORD="fuzz admin passphrase" \
  KEYWARD_AUTH_ATTEMPTS_PER_IP_PER_MINUTE=100000 \
  "$bin" serve --leptos-config "$ROOT/Leptos.toml" > "$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/server.log"; exit 1; }

key="$("$bin" create-key --org system --name fuzz \
  --scopes org:write members:write keys:write audit:write users:write roles:write usage:write approvals:write plans:write)"
auth="Authorization: Bearer $key"
key_id="$(curl -fsS -H "$auth" "http://127.0.0.1:$port/api/v1/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')"
# The fuzzer sends thousands of requests: a limit that does not stop it.
curl -fsS -X PUT -H "$auth" -H 'content-type: application/json' \
  -d '{"rate_limit": 1000000, "rate_window_seconds": 60}' \
  "http://127.0.0.1:$port/api/v1/keys/$key_id/limit" >/dev/null

"$st" run "http://127.0.0.1:$port/api/v1/openapi.json" -H "$auth" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "${KEYWARD_FUZZ_EXAMPLES:-25}" --generation-deterministic
if grep -q " ERROR " "$work/server.log"; then
  echo "the server logged errors while fuzzed:" >&2
  grep " ERROR " "$work/server.log" | head -20 >&2
  exit 1
fi
