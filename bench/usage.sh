#!/usr/bin/env bash
# The usage hot path, measured in one run on this machine (release build, loopback, wrk):
#   1. bare axum handler (/livez) vs an authenticated GET /api/v1/me through the FULL path
#      (verify, scopes, IP, rate limit, request log) at 64 connections: throughput ratio and
#      p99 of each;
#   2. the same full path with 1 key vs 1 000 000 keys in the database: throughput ratio;
#   3. the request-log writer alone (examples/log_writer.rs): rows per second under a flood,
#      and rows lost at a sustained 50 000 rows/s, the writer stopped the way SIGTERM stops
#      it; and the server under load
#      stopped by SIGTERM: answered requests vs log rows;
#   4. two instances on one PostgreSQL: admitted vs the key's limit, and throughput.
# The machine is shared and noisy: compare the ratios, not the absolute numbers.
#
#   bench/usage.sh [seconds per run, default 8]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
duration="${1:-8}"
apt_install wrk
bin="$CARGO_TARGET_DIR/release/keyward"
# Always through cargo (a no-op when nothing changed): a binary left by another build or an
# experiment must not be measured by mistake.
log "building release"
cargo leptos build --release --precompress --split

source "$ROOT/bench/lib.sh"

run() { # name, connections, extra wrk args... → prints requests/s
  local name="$1" conns="$2"; shift 2
  wrk -t2 -c"$conns" -d"${duration}s" --latency "$@" >"$work/$name.txt" 2>&1
  awk '/Requests\/sec/ {print $2}' "$work/$name.txt"
}
p99() { awk '$1 == "99%" {print $2}' "$work/$1.txt"; }
total() { awk '/requests in/ {print $1}' "$work/$1.txt"; }
metric() { # port, metric line prefix → value
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {print $2}'
}

# 1. bare vs full path, 64 connections.
db1="sqlite://$work/one.db"
port="$(free_port)"
KEYWARD_DATABASE_URL="$db1" "$bin" migrate >/dev/null
start "$db1" "$port"
key="$(key_with_limit "$db1" "$port" 1000000000 1)"
log "1. bare axum handler vs full path (${duration}s each, 64 connections)"
bare=$(run bare 64 "http://127.0.0.1:$port/livez")
full=$(run full 64 -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/me")
grep -q "Non-2xx" "$work/full.txt" && { echo "full-path run got errors:" >&2; cat "$work/full.txt" >&2; exit 1; }
lost1=$(metric "$port" "keyward_request_log_lost_total")

# 3b. SIGTERM under load: every answered request has its row.
log "3b. SIGTERM under load"
wrk -t2 -c64 -d"${duration}s" -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/me" >"$work/term.txt" 2>&1 &
load=$!
sleep 2
before_rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$work/one.db').execute(\"select count(*) from request_log where route='/api/v1/me'\").fetchone()[0])")
kill -TERM "${servers[0]}"
wait "${servers[0]}" 2>/dev/null
wait "$load" 2>/dev/null
rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$work/one.db').execute(\"select count(*) from request_log where route='/api/v1/me'\").fetchone()[0])")

# 2. 1 key vs 1 000 000 keys.
log "2. verify with 1 000 000 keys in the database"
python3 - "$work/one.db" <<'PY'
import sqlite3, sys, os, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
def rows(n):
    for i in range(n):
        h = os.urandom(32).hex()
        yield (f"key_bench{i:011d}", "org_system", f"bulk {i}", h, "kw_live_bulk", now, now)
db.executemany(
    "insert into api_key (api_key_id, organization_id, name, environment, key_hash, display_prefix, scopes, created_at, updated_at, signing_salt) values (?, ?, ?, 'live', ?, ?, '{\"keys\":\"read\"}', ?, ?, 'salt')",
    rows(1_000_000))
db.commit()
print("keys in the database:", db.execute("select count(*) from api_key").fetchone()[0])
PY
port2="$(free_port)"
start "$db1" "$port2"
many=$(run many 64 -H "Authorization: Bearer $key" "http://127.0.0.1:$port2/api/v1/me")
grep -q "Non-2xx" "$work/many.txt" && { echo "1M-key run got errors:" >&2; cat "$work/many.txt" >&2; exit 1; }

# 3a. the writer alone.
log "3a. request-log writer throughput (500 000 rows)"
cargo build --release -q -p keyward-server --example log_writer
writer_flood="$("$CARGO_TARGET_DIR/release/examples/log_writer" 500000 0)"
writer_sustained="$("$CARGO_TARGET_DIR/release/examples/log_writer" 500000 50000)"

# 4. two instances on PostgreSQL.
log "4. two instances on one PostgreSQL"
pg_url="$("$ROOT/scripts/pg.sh" start "$work/pg")"
pg_db="${pg_url%/*}/kwbench"
psql "$pg_url" -qc "create database kwbench" >/dev/null
KEYWARD_DATABASE_URL="$pg_db" "$bin" migrate >/dev/null
pa="$(free_port)"; pb="$(free_port)"
start "$pg_db" "$pa"; start "$pg_db" "$pb"
limit=20000
pgkey="$(key_with_limit "$pg_db" "$pa" "$limit" 3600)"
sleep 1.2 # the key cache's bound: both instances see the new limit
wrk -t1 -c32 -d"${duration}s" -H "Authorization: Bearer $pgkey" "http://127.0.0.1:$pa/api/v1/me" >"$work/pga.txt" 2>&1 &
wa=$!
wrk -t1 -c32 -d"${duration}s" -H "Authorization: Bearer $pgkey" "http://127.0.0.1:$pb/api/v1/me" >"$work/pgb.txt" 2>&1
wait "$wa"
sleep 2 # the log writers flush
pg_key_id="$(cat "$work/last_key_id")"
admitted=$(psql "$pg_db" -tAc "select count(*) from request_log where api_key_id = '$pg_key_id' and status = 200")
by_a=$(psql "$pg_db" -tAc "select count(*) from request_log where api_key_id = '$pg_key_id' and status = 429")
rps_a=$(awk '/Requests\/sec/ {print $2}' "$work/pga.txt"); rps_b=$(awk '/Requests\/sec/ {print $2}' "$work/pgb.txt")

echo
echo "== results ($(date -u +%Y-%m-%d), $(nproc) cores, release build) =="
printf '1. %-28s %10s req/s  p99 %s\n' "bare axum (/livez)" "$bare" "$(p99 bare)"
printf '   %-28s %10s req/s  p99 %s\n' "full path (/api/v1/me)" "$full" "$(p99 full)"
python3 -c "print(f'   full/bare throughput ratio: {$full / $bare:.2f}')"
printf '2. %-28s %10s req/s  p99 %s\n' "1 000 000 keys" "$many" "$(p99 many)"
python3 -c "print(f'   1M keys / 1 key throughput ratio: {$many / $full:.2f}')"
echo "3. $writer_flood"
echo "   $writer_sustained"
echo "   server under load: request-log entries lost during the full-path run: ${lost1:-?}"
answered=$(( $(total full) + $(total term) + 1 ))
echo "   SIGTERM under load: $answered answered requests (wrk's completed responses + 1 setup call), $rows log rows ($((answered - rows)) lost; $before_rows rows 2 s before the stop)"
echo "4. two instances on PostgreSQL, limit $limit per hour: $admitted answered 200 (one of them the setup call made before the limit was set), $by_a refused 429; throughput $rps_a + $rps_b req/s"
