#!/usr/bin/env bash
# Installs what building Keyward needs, skipping what is already there (idempotent).
#   scripts/bootstrap.sh          build tools (toolchain, cargo-leptos, wasm-bindgen, wasm-opt)
#   scripts/bootstrap.sh --test   also Chromium, PostgreSQL and the Playwright packages
# Route and reasons: ../shared/TOOLCHAIN.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

# 1. Debian's rustc 1.96 with the std sources (for -Zbuild-std) and rust-lld for wasm.
# gcc and make build the bundled C: SQLite (cc) and jemalloc, the server's allocator (make).
packages=(rustc-web cargo-web rust-web-src libstd-rust-web-dev lld-22 ca-certificates gcc make)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
if [ $with_test -eq 1 ]; then
  packages+=(chromium)
  # PostgreSQL server binaries: Debian's package, unless the machine already has them.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || packages+=(postgresql)
fi
apt_install "${packages[@]}"

# 2. The "system" toolchain in rustup (rust-toolchain.toml names it).
if ! command -v rustup >/dev/null 2>&1; then
  echo "rustup is required (the machine's Rust installer); see README" >&2
  exit 1
fi
if ! rustup toolchain list | grep -q '^system'; then
  log "linking Debian's rustc as the rustup toolchain 'system'"
  rustup toolchain link system /usr
fi

# 3. cargo-leptos 0.3.11 without downloads (about 16 minutes the first time on 2 cores).
if ! cargo leptos --version 2>/dev/null | grep -q '0\.3\.11'; then
  log "installing cargo-leptos 0.3.11 (first time only: ~16 min on 2 cores)"
  (cd / && cargo install cargo-leptos --version 0.3.11 --locked --features no_downloads)
fi

# 4. wasm-bindgen CLI at exactly the version in Cargo.lock (unlocked: see TOOLCHAIN.md).
wbg_version="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock")"
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg_version\$"; then
  log "installing wasm-bindgen-cli $wbg_version"
  (cd / && cargo install wasm-bindgen-cli --version "$wbg_version" --force)
fi

# 5. wasm-opt (release builds) from npm's binaryen, into the cache.
if ! command -v wasm-opt >/dev/null 2>&1; then
  log "installing wasm-opt (npm binaryen)"
  mkdir -p "$KEYWARD_CACHE/tools"
  npm install --prefix "$KEYWARD_CACHE/tools" --no-audit --no-fund --silent binaryen@132 >/dev/null
fi

# 6. Browser libraries served by Keyward itself (ECharts, pinned in vendor/package-lock.json),
#    copied into public/ so that every site build carries them.
echarts_file="$ROOT/public/vendor/echarts-5.5.1.common.min.js"
if [ ! -f "$echarts_file" ] || [ "$ROOT/vendor/package-lock.json" -nt "$echarts_file" ]; then
  log "installing ECharts (npm, pinned)"
  (cd "$ROOT/vendor" && npm ci --no-audit --no-fund --silent)
  mkdir -p "$ROOT/public/vendor"
  cp "$ROOT/vendor/node_modules/echarts/dist/echarts.common.min.js" "$echarts_file"
fi

# 7. Test tools: Playwright and axe from npm (browsers are Debian's Chromium, not downloaded).
if [ $with_test -eq 1 ]; then
  if [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ] || [ "$ROOT/end2end/package-lock.json" -nt "$ROOT/end2end/node_modules/.package-lock.json" ]; then
    log "installing end-to-end test packages"
    (cd "$ROOT/end2end" && npm ci --no-audit --no-fund --silent)
  fi
  # The REST API fuzzer (schemathesis, pinned) in its own virtual environment.
  if ! "$KEYWARD_CACHE/schemathesis/bin/st" --version 2>/dev/null | grep -q "4\.32\.5"; then
    log "installing schemathesis 4.32.5 (PyPI)"
    python3 -m venv "$KEYWARD_CACHE/schemathesis"
    "$KEYWARD_CACHE/schemathesis/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
  fi
fi
log "bootstrap complete"
