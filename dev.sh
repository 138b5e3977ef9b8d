#!/usr/bin/env bash
# Lamplighter's developer entry point.
#   ./dev.sh run    set up what is missing, then run Lamplighter (the tray app;
#                   the headless agent when there is no display)
#   ./dev.sh test   set up what is missing, then build and run the whole test suite
#   ./dev.sh setup  only install what is missing (safe to repeat; quiet when nothing is)
#   ./dev.sh package  build the Debian package with the Tauri bundler (tray and window)
# Debian/Ubuntu. Installs with apt-get (through sudo when not root) and cargo.
set -euo pipefail
cd "$(dirname "$0")"

# What each part needs, by Debian package name.
BUILD_CLI=(build-essential pkg-config libgstreamer1.0-dev)
BUILD_APP=(libwebkit2gtk-4.1-dev)
# Voicemail playback: G.711/MP3 (good), GSM 6.10 (bad), WMA (ugly's ASF demuxer + libav), PulseAudio/PipeWire output.
PLAYBACK=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
          gstreamer1.0-libav gstreamer1.0-pulseaudio)
RUN_APP=(libwebkit2gtk-4.1-0 fonts-dejavu-core xdg-utils)
TEST_PEERS=(xvfb xauth dbus gnome-keyring libsecret-tools libglib2.0-bin webkit2gtk-driver
            haskell-status-notifier-item-utils sip-tester iproute2 baresip-core libxml2-utils openssl curl
            dunst pulseaudio pulseaudio-utils kamailio kamailio-presence-modules socat slapd ldap-utils
            krb5-kdc krb5-admin-server krb5-user)
TAURI_DRIVER_VERSION='^2'

say() { printf '%s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s ' "$p"
  done
}

ensure_packages() {
  command -v dpkg-query >/dev/null || { say "dev.sh: this script installs with apt-get (Debian/Ubuntu); install by hand: $*"; return 0; }
  local missing
  missing=$(missing_packages "$@")
  [ -z "$missing" ] && return 0
  say "dev.sh: installing $missing"
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    say "dev.sh: cargo not found. Install Rust with rustup (https://rustup.rs); rust-toolchain.toml picks the version."
    exit 1
  fi
}

ensure_tauri_driver() {
  if ! tauri-driver --help >/dev/null 2>&1; then
    say "dev.sh: installing tauri-driver 2 (WebDriver for the window tests)"
    cargo install tauri-driver --version "$TAURI_DRIVER_VERSION" --locked -j "$(nproc)" --quiet
  fi
}

# The sign-in tests' independent authorization server: oidc-provider (npm), pinned in its package-lock.json.
ensure_oidc_provider() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ensure_packages nodejs npm
  fi
  if [ ! -d tests/oidc-provider/node_modules/oidc-provider ]; then
    say "dev.sh: installing oidc-provider (npm) for the sign-in tests"
    npm ci --prefix tests/oidc-provider --no-audit --no-fund --loglevel=error >/dev/null
  fi
}

setup_all() {
  ensure_rust
  ensure_packages "${BUILD_CLI[@]}" "${BUILD_APP[@]}" "${RUN_APP[@]}" "${PLAYBACK[@]}" "${TEST_PEERS[@]}"
  ensure_tauri_driver
  ensure_oidc_provider
}

have_display() { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }

run() {
  ensure_rust
  if have_display; then
    ensure_packages "${BUILD_CLI[@]}" "${BUILD_APP[@]}" "${RUN_APP[@]}" "${PLAYBACK[@]}"
    # cargo's own progress: the first build takes minutes on a small machine
    say "dev.sh: building the tray app (the first build takes a few minutes)"
    cargo build -p lamplighter-tray -p lamplighter-app
    exec "${CARGO_TARGET_DIR:-target}/debug/lamplighter" "$@"
  else
    say "dev.sh: no display (DISPLAY and WAYLAND_DISPLAY are unset): running the headless agent instead."
    ensure_packages "${BUILD_CLI[@]}" "${PLAYBACK[@]}"
    say "dev.sh: building the agent (the first build takes a few minutes)"
    cargo build -p lamplighter-cli
    exec "${CARGO_TARGET_DIR:-target}/debug/lamplighter-agent" run "$@"
  fi
}

# Libraries must build without WebKit/GTK: only the Tauri shell may pull them in.
check_gui_free() {
  local hits
  hits=$(cargo tree --workspace --exclude lamplighter-app -e normal,build --prefix none 2>/dev/null \
         | grep -E '^(gtk|gdk|webkit2gtk|javascriptcore-rs|soup3|tauri) ' | sort -u || true)
  if [ -n "$hits" ]; then
    say "dev.sh: a library crate depends on GUI crates (only src-tauri may):"; say "$hits"; return 1
  fi
  say "dev.sh: library crates are free of WebKit/GTK"
}

test_all() {
  setup_all
  cargo fmt --all -- --check
  check_gui_free
  # lints and docs are errors here, not advice
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
  say "dev.sh: clippy and rustdoc are clean"
  cargo build --quiet -p lamplighter-tray -p lamplighter-app
  local log status
  log=$(mktemp)
  set +e
  cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  # One closing line over every test binary, e.g. "total: 97 passed, 0 failed, 4 skipped".
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) s += $i } }
       END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
  rm -f "$log"
  return "$status"
}

package() {
  ensure_rust
  ensure_packages "${BUILD_CLI[@]}" "${BUILD_APP[@]}" "${PLAYBACK[@]}"
  if ! cargo tauri --version >/dev/null 2>&1; then
    say "dev.sh: installing tauri-cli 2 (the Tauri bundler)"
    cargo install tauri-cli --version '^2' --locked -j "$(nproc)" --quiet
  fi
  # The package holds both desktop programs: lamplighter-window (the bundle's main binary,
  # its menu entry) and the tray, lamplighter, which the autostart entry starts.
  cargo build --release -p lamplighter-tray
  local target
  target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
  cargo tauri build --bundles deb --ci --config \
    "{\"bundle\":{\"linux\":{\"deb\":{\"files\":{\"/usr/bin/lamplighter\":\"$target/release/lamplighter\"}}}}}"
  ls -l "${CARGO_TARGET_DIR:-target}"/release/bundle/deb/*.deb
}

case "${1:-}" in
  run) shift; run "$@" ;;
  package) package ;;
  test) shift; test_all "$@" ;;
  setup) setup_all ;;
  *) say "usage: ./dev.sh run | test | setup | package"; exit 2 ;;
esac
