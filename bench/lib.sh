# Shared by the scripts in bench/: sourced, not run.

# need PROGRAM PACKAGE: installs PACKAGE with apt-get (as root) when PROGRAM is missing.
need() {
  command -v "$1" >/dev/null && return
  [ "$(id -u)" = 0 ] || { echo "$(basename "$0"): install $2 (or run as root)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# free_port [udp]: a TCP (or UDP) port that nothing on 127.0.0.1 uses now.
free_port() {
  python3 -c 'import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1:] == ["udp"] else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "$@"
}

# build: the release binary, as $bin (an absolute path, so it still works after a cd).
build() {
  cargo build --release -q
  bin=$PWD/target/release/socketeer
}

# scratch: a temporary directory $work and a list $pids of background processes;
# on exit the processes are stopped and the directory removed.
scratch() {
  work=$(mktemp -d)
  pids=()
  trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
}
