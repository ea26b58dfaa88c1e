#!/usr/bin/env bash
# Sign-in flood: the server's memory and a signed-in page's latency while one client floods
# /rpc/sign_in with unknown emails (600 requests, 200 at once), measured in one run.
#
# Two rounds against the same server binary (loopback only, bounded in count and time):
#   limited:   the default per-client allowance (30 attempts a minute): most answers are 429
#              before any password work;
#   unlimited: the allowance raised out of the way, so every request reaches argon2 and only
#              the hashing bound (a semaphore of cores-1 computations) protects the server.
# For each: answers by status, peak RSS (VmHWM) before and after, and the p50/p99 latency of a
# signed-in page (/keys) during the flood against its latency when idle (the ratio is what
# counts: the machine is shared and noisy).
#
#   bench/signin-flood.sh            # uses the release build (builds it when missing)
#   KEYWARD_BIN=path/to/keyward bench/signin-flood.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
bin="${KEYWARD_BIN:-$CARGO_TARGET_DIR/release/keyward}"
[ -x "$bin" ] || { log "building release"; cargo leptos build --release --precompress --split; }

round() { # name, extra serve args...
  local name="$1"; shift
  local work port server
  work="$(mktemp -d)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  KEYWARD_DATABASE_URL="sqlite://$work/bench.db" KEYWARD_SECRET="bench-secret-bench-secret-bench-secret" \
    KEYWARD_LOG=error KEYWARD_LEPTOS_CONFIG="$ROOT/Leptos.toml" \
    "$bin" serve --listen "127.0.0.1:$port" --admin-password "bench passphrase" "$@" >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.2; done
  log "round: $name"
  python3 - "$port" "$server" "$name" <<'PY'
import http.client, sys, threading, time, urllib.parse, statistics
port, pid, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
H = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin",
     "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

def rss_kib(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])

def post(path, form, headers=H):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", path, urllib.parse.urlencode(form), headers)
    r = c.getresponse(); r.read()
    cookies = [v.split(";")[0] for v in r.headers.get_all("Set-Cookie") or []]
    c.close()
    return r.status, cookies

status, cookies = post("/rpc/sign_in", {"email": "admin@keyward.local", "password": "bench passphrase"})
assert status in (200, 302), status
session = "; ".join(cookies)

def page_ms():
    t = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("GET", "/keys", headers={"Cookie": session})
    r = c.getresponse(); body = r.read(); c.close()
    assert r.status == 200 and b"API keys" in body, r.status
    return (time.perf_counter() - t) * 1000

idle = [page_ms() for _ in range(20)]
before = rss_kib("VmHWM")
statuses, lock = {}, threading.Lock()
work = list(range(600))
def flood():
    while True:
        with lock:
            if not work: return
            i = work.pop()
        try:
            s, _ = post("/rpc/sign_in", {"email": f"nobody{i}@example.org", "password": "wrong password here"})
        except Exception as e:
            s = type(e).__name__
        with lock:
            statuses[s] = statuses.get(s, 0) + 1
threads = [threading.Thread(target=flood) for _ in range(200)]
start = time.perf_counter()
for t in threads: t.start()
during = []
while any(t.is_alive() for t in threads) and time.perf_counter() - start < 300:
    during.append(page_ms())
for t in threads: t.join(timeout=300)
elapsed = time.perf_counter() - start
after = rss_kib("VmHWM")
q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(len(xs) * p))]
print(f"[{name}] answers: {dict(sorted(statuses.items(), key=str))} in {elapsed:.1f} s")
print(f"[{name}] peak RSS: {before/1024:.0f} MiB before, {after/1024:.0f} MiB after the flood")
if during:
    print(f"[{name}] signed-in page: idle p50 {statistics.median(idle):.1f} ms; during flood p50 {statistics.median(during):.1f} ms, p99 {q(during, .99):.1f} ms ({len(during)} loads); p50 ratio {statistics.median(during)/statistics.median(idle):.1f}x")
PY
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
  rm -rf "$work"
}

round limited
round unlimited --auth-attempts-per-ip-per-minute 1000000
