# Shared by the bench scripts that load a throw-away server: a work directory and the
# servers started in it (stopped, and the directory removed, on exit), a free port, a started
# server, and a key with a given limit. The functions run `$bin`.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
work="$(mktemp -d)"
servers=()
cleanup() {
  for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; done
  "$ROOT/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export KEYWARD_SECRET="bench-secret-bench-secret-bench-secret" KEYWARD_LOG=warn

start() { # database url, port → starts a server, waits for it
  KEYWARD_DATABASE_URL="$1" "$bin" serve --listen "127.0.0.1:$2" --admin-password "bench passphrase" >>"$work/server-$2.log" 2>&1 &
  servers+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$2/livez" >/dev/null && return; sleep 0.2; done
  echo "server on $2 did not start" >&2; exit 1
}
# A key with `limit` requests per `window` seconds (given through the REST API by an admin key).
key_with_limit() { # database url, port, limit, window
  local key admin id
  key="$(KEYWARD_DATABASE_URL="$1" "$bin" create-key --org system --name "bench $RANDOM" --scopes keys:read)"
  admin="$(KEYWARD_DATABASE_URL="$1" "$bin" create-key --org system --name "bench admin $RANDOM" --scopes keys:write)"
  id="$(curl -fs -H "Authorization: Bearer $key" "http://127.0.0.1:$2/api/v1/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')"
  curl -fs -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"rate_limit\":$3,\"rate_window_seconds\":$4}" "http://127.0.0.1:$2/api/v1/keys/$id/limit" >/dev/null
  echo "$id" >"$work/last_key_id"
  echo "$key"
}
