#!/usr/bin/env bash
# Shared settings for Keyward's scripts. Sourced, not run.
#
# Build caches live outside the clone (KEYWARD_CACHE, default ~/.cache/keyward) so that a fresh
# clone on a warm machine reuses them; the cold path fills them.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KEYWARD_CACHE="${KEYWARD_CACHE:-$HOME/.cache/keyward}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KEYWARD_CACHE/target}"
export PATH="$HOME/.cargo/bin:$KEYWARD_CACHE/tools/node_modules/.bin:$PATH"
# Debian's rustc 1.96 builds both sides; the WASM side compiles its own std (-Zbuild-std).
export RUSTUP_TOOLCHAIN=system
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Runtime site options come from Leptos.toml; cargo-leptos gets them as LEPTOS_* so the build
# writes the site where the server will look for it (one home per setting).
leptos_toml() {
  sed -n "s/^$1 *= *\"\{0,1\}\([^\"]*\)\"\{0,1\}.*/\1/p" "$ROOT/Leptos.toml" | head -n1
}
export LEPTOS_OUTPUT_NAME="$(leptos_toml output-name)"
export LEPTOS_SITE_ROOT="$(leptos_toml site-root)"
export LEPTOS_SITE_PKG_DIR="$(leptos_toml site-pkg-dir)"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Runs apt-get install for the packages that are missing (update first, once).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
}
