#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one:
#   1. installs the test peers that are missing (as root, with apt-get),
#   2. checks formatting, lints and that the docs build without warnings,
#   3. runs every test (unit tests and the integration tests over loopback),
#   4. runs every fuzz target for a short while (scripts/fuzz.sh).
# Tests that need a peer fail with a clear message when it is missing; none are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# command:package for every program a test runs that no one here wrote.
peers=(
  nc:netcat-openbsd
  inetd:openbsd-inetd
  python3:python3
  nmap:nmap
  ndiff:ndiff
  xmllint:libxml2-utils
  nft:nftables
  ip:iproute2
  prlimit:util-linux
  setpriv:util-linux
  ping:iputils-ping
  redis-server:redis-server
  tshark:tshark
  tcpdump:tcpdump
  chromium:chromium
  atftp:atftp
  in.tftpd:tftpd-hpa
  irssi:irssi
  tmux:tmux
  chromium:chromium
  ngircd:ngircd
)

# module:package for every Python library a test imports (from PyPI).
python_peers=(
  irc.client:irc
)

missing=()
for peer in "${peers[@]}"; do
  command -v "${peer%%:*}" >/dev/null 2>&1 || missing+=("${peer#*:}")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing test peers: ${missing[*]}"
    # Packaged daemons must not start on install: the tests start their own
    # on their own ports, and a stray system inetd would hold ports 7/13/37
    # (or a system redis-server port 6379).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod +x "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    # tshark's package asks whether non-root users may capture; the tests run as root.
    if command -v debconf-set-selections >/dev/null 2>&1; then
      echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test.sh: missing test peers: ${missing[*]}" >&2
    echo "test.sh: install them (sudo apt-get install ${missing[*]}) or run as root; the tests that need them will fail" >&2
  fi
fi

for peer in "${python_peers[@]}"; do
  if ! python3 -c "import ${peer%%:*}" >/dev/null 2>&1; then
    echo "test.sh: installing the Python library ${peer#*:}"
    python3 -m pip install --quiet "${peer#*:}" || echo "test.sh: could not install ${peer#*:}; the tests that need it will fail" >&2
  fi
done

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
# Most integration tests wait on sockets and child processes rather than
# compute (on 2 cores: ~45 s of CPU in ~190 s of wall time), so twice as many
# test threads as cores finish sooner without starving each other.
cargo test --locked -- --test-threads "$((2 * $(nproc)))"
scripts/fuzz.sh 20
