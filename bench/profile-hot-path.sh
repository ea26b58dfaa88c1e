#!/usr/bin/env bash
# Where the full API path spends what the bare handler does not: a differential profile.
#
# Starts the release `keyward` on a throw-away SQLite file with a key whose limit is out of the
# way, then, for the bare handler (GET /livez) and the full path (GET /api/v1/me: verify,
# scopes, IP, limit, log), loads it with wrk (64 connections) while `perf record` samples the
# server. It prints the server's sampled CPU per request by category (the SQLite writer thread,
# the allocator, the kernel, hyper, axum/tower, tokio, our code, the rest) for both, and the
# difference: what to cut first. Per-request figures, not shares, so that the two runs compare
# although their throughputs differ. The machine is shared and noisy: run it twice.
#
#   bench/profile-hot-path.sh [seconds per run, default 8]
# Needs `perf` (linux-perf) and permission to profile the server (root, or
# kernel.perf_event_paranoid ≤ 1).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
duration="${1:-8}"
apt_install wrk linux-perf
bin="$CARGO_TARGET_DIR/release/keyward"
[ -x "$bin" ] || { log "building release"; cargo leptos build --release --precompress --split; }

source "$ROOT/bench/lib.sh"
db="sqlite://$work/bench.db"
KEYWARD_DATABASE_URL="$db" "$bin" migrate >/dev/null
port="$(free_port)"
start "$db" "$port"
server="${servers[0]}"
key="$(key_with_limit "$db" "$port" 1000000000 1)"

record=$((duration - 2))
for run in bare full; do
  path=/livez; [ "$run" = full ] && path=/api/v1/me
  log "$run: GET $path, ${duration}s, perf for the middle ${record}s"
  wrk -t2 -c64 -d"${duration}s" -H "Authorization: Bearer $key" "http://127.0.0.1:$port$path" >"$work/$run.wrk" &
  load=$!
  sleep 1
  perf record -F 3999 -o "$work/$run.data" -p "$server" -- sleep "$record" >/dev/null 2>&1
  wait "$load"
  grep -q "Non-2xx" "$work/$run.wrk" && { echo "$run got errors:" >&2; cat "$work/$run.wrk" >&2; exit 1; }
  perf report -i "$work/$run.data" --no-children -n --sort comm,dso,sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' >"$work/$run.samples"
done

python3 - "$work" "$record" <<'PY'
import re, sys
work, seconds = sys.argv[1], float(sys.argv[2])
ALLOC = ("malloc", "free", "unlink_chunk", "consolidate", "__rust_alloc", "__rdl_alloc",
         "__rust_dealloc", "__rust_realloc", "je_", "jemalloc", "sdallocx", "mallocx")
def category(comm, dso, kind, sym):
    if comm.startswith("sqlx"): return "SQLite writer thread"
    if kind == "k": return "kernel"
    if any(a in sym for a in ALLOC): return "allocator"
    if dso.startswith("libc"): return "libc, other"
    for name in ("hyper", "tokio"):
        if name in sym: return name
    if "axum" in sym or "tower" in sym: return "axum/tower layers"
    if "keyward" in sym: return "keyward code"
    return "other (hashing, JSON, hex…)"
def per_request(run):
    text = open(f"{work}/{run}.wrk").read()
    rps = float(re.search(r"Requests/sec:\s+(\S+)", text).group(1))
    requests = rps * seconds
    totals = {}
    for line in open(f"{work}/{run}.samples"):
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if m:
            c = category(m.group(2), m.group(3), m.group(4), m.group(5))
            totals[c] = totals.get(c, 0) + int(m.group(1))
    # One sample stands for 1/3999 s of one thread's CPU.
    return rps, {c: n / 3999 / requests * 1e6 for c, n in totals.items()}
(bare_rps, bare), (full_rps, full) = per_request("bare"), per_request("full")
print(f"\nthroughput: bare {bare_rps:,.0f} req/s, full {full_rps:,.0f} req/s, ratio {full_rps / bare_rps:.2f}")
print(f"server CPU sampled per request: bare {sum(bare.values()):.1f} µs, full {sum(full.values()):.1f} µs\n")
print(f"{'µs per request':32} {'bare':>6} {'full':>6} {'full − bare':>12}")
for c in sorted(set(bare) | set(full), key=lambda c: bare.get(c, 0) - full.get(c, 0)):
    print(f"{c:32} {bare.get(c, 0):6.2f} {full.get(c, 0):6.2f} {full.get(c, 0) - bare.get(c, 0):12.2f}")
PY
