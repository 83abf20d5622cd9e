#!/usr/bin/env bash
# Port scanners side by side, in one run, on one fixture: a full 1-65535 scan of
# 127.0.0.1 with 20 TCP listeners (and 20 UDP echo sockets for the UDP rows), inside a
# private network namespace (unshare -n, its own loopback) so nothing else on the
# machine is touched or counted.
#
#   bench/scan.sh                 # 10 rounds, every scanner once per round
#   ROUNDS=3 bench/scan.sh
#
# Rows: socketeer's connect scan vs nmap -sT and RustScan; socketeer --syn vs nmap -sS;
# socketeer --udp vs nmap -sU. Each cell is the median wall time of the rounds (rounds
# interleave the scanners: the machine is shared and noisy), how many rounds found
# exactly the fixture's open ports, and the peak RSS (/usr/bin/time -v).
#
# Then the cases where targets limit their answers or are absent (issue 19), against a
# target namespace across a veth pair (loopback is exempt from ICMP limits): an nft limit
# of 50 resets/s (TCP 1-300, connect and SYN), an nft limit of 50 ICMP errors/s (UDP
# 1-300), the kernel's default ICMP limit (UDP 1-30: a burst of 6, then 1/s), and a /28
# where one address of 13 is there (TCP 1-1024, SYN, discovery on). Each cell: the median
# time of the rounds and how many rounds were exact (every host's up/down status and every
# port's verdict as the fixture set them), from both tools' grepable output.
#
#   CASES=limits bench/scan.sh    # only those (CASES=loopback: only the first table)
#   LIMIT_ROUNDS=3                # rounds of those cases (default 3: they take minutes)
#   LIMIT_CASES=discovery         # only discovery's rows (LIMIT_CASES=limits: only the others)
#
# Host discovery alone: the /28 with one port (22) scanned, socketeer as root (its own
# ARP requests) and without CAP_NET_RAW (setpriv; TCP pings to 80 and 443 and the
# kernel's ARP table), each beside nmap -sS as root (nmap's ARP ping).
#   BIN=target/debug/socketeer    # scan with this binary instead of building a release one
#
# Needs root (namespace, raw sockets), nmap, nftables and GNU time (installed with
# apt-get), and RustScan (RUSTSCAN=/path, or on PATH, or `cargo install rustscan` into
# ~/.cache).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${ROUNDS:-10}
cases=${CASES:-loopback limits}
limit_rounds=${LIMIT_ROUNDS:-3}

if [ -z "${SCAN_BENCH_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "bench/scan.sh: run as root (network namespace, raw sockets)" >&2; exit 1; }
  need nmap nmap
  need /usr/bin/time time
  need nft nftables
  if [ -z "${RUSTSCAN:-}" ]; then
    RUSTSCAN=$(command -v rustscan || true)
  fi
  if [ -z "$RUSTSCAN" ] && [[ " ${CASES:-loopback} " == *" loopback "* ]]; then
    root=${XDG_CACHE_HOME:-$HOME/.cache}/socketeer-bench
    [ -x "$root/bin/rustscan" ] || cargo install -q rustscan --root "$root"
    RUSTSCAN=$root/bin/rustscan
  fi
  [ -n "${BIN:-}" ] || cargo build --release -q
  export RUSTSCAN SCAN_BENCH_NETNS=1
  exec unshare -n "$0" "$@"
fi

ip link set lo up
bin=${BIN:-target/release/socketeer}
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
fixture_pid=
target_pid=
target_ns=skt-scan-bench-$$
cleanup() {
  for pid in $fixture_pid $target_pid; do kill "$pid" 2>/dev/null || true; done
  ip netns del "$target_ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ports="22,80,443,1000,2000,3000,8080,9000,10000,20000,30000,33000,40000,45000,50000,55000,60000,61000,65000,65535"
python3 - "$ports" >"$work/fixture.log" 2>&1 <<'PY' &
import socket, sys, threading, time
ports = [int(p) for p in sys.argv[1].split(",")]
keep = []
for port in ports:
    tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port)); tcp.listen(1024); keep.append(tcp)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", port))
    def echo(s=udp):
        while True:
            data, peer = s.recvfrom(2048); s.sendto(data, peer)
    threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
time.sleep(86400)
PY
fixture_pid=$!
for _ in $(seq 50); do grep -q ready "$work/fixture.log" 2>/dev/null && break; sleep 0.1; done

# name command... : runs it under GNU time, prints "seconds max_rss_kb open_ports_csv".
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$work/time" "$@" >"$work/out" 2>/dev/null || true
  local secs rss open
  secs=$(python3 -c 'import sys
for l in open(sys.argv[1]):
    if "Elapsed (wall clock)" in l:
        v = l.rsplit(" ", 1)[1].strip().split(":")
        print(sum(float(x) * 60 ** i for i, x in enumerate(reversed(v))))' "$work/time")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time")
  open=$(python3 - "$name" "$work/out" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
text = open(path).read()
if name.startswith("nmap"):
    m = re.search(r"Ports: ([^\t\n]*)", text)
    found = [e.split("/")[0].strip() for e in m.group(1).split(", ") if e.split("/")[1] == "open"] if m else []
elif name == "rustscan":
    m = re.search(r"\[([\d,]*)\]", text)
    found = m.group(1).split(",") if m and m.group(1) else []
else:
    found = [l.rsplit(":", 1)[1] for l in text.split()]
print(",".join(sorted(found, key=int)))
PY
)
  echo "$name $secs $rss $open" >>"$work/runs"
}

echo "# bench/scan.sh: $(nproc) cores, $(date -u +%Y-%m-%d), $rounds rounds, $(uname -r), nmap $(nmap --version | awk 'NR==1{print $3}'), $("$RUSTSCAN" --version 2>/dev/null | head -1)"

if [[ " $cases " == *" loopback "* ]]; then
for _ in $(seq "$rounds"); do
  measure socketeer "$bin" scan 127.0.0.1 -p- -o list
  measure nmap-sT nmap -sT -p- -n -Pn -T5 --min-rate 50000 127.0.0.1 -oG -
  measure rustscan "$RUSTSCAN" -a 127.0.0.1 -r 1-65535 -g --ulimit 20000
  measure socketeer-syn "$bin" scan 127.0.0.1 -p- --syn -o list
  measure nmap-sS nmap -sS -p- -n -Pn -T5 --min-rate 50000 127.0.0.1 -oG -
  measure socketeer-udp "$bin" scan 127.0.0.1 -p- --udp -o list
  measure nmap-sU nmap -sU -p- -n -Pn --min-rate 20000 127.0.0.1 -oG -
done

echo
python3 - "$work/runs" "$ports" "$rounds" <<'PY'
import statistics, sys
path, ports, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
expected = ",".join(sorted(ports.split(","), key=int))
runs = {}
for line in open(path):
    parts = line.split()
    name, secs, rss = parts[0], float(parts[1]), int(parts[2])
    found = parts[3] if len(parts) > 3 else ""
    runs.setdefault(name, []).append((secs, rss, found == expected))
def cell(name):
    r = runs[name]
    return statistics.median(s for s, _, _ in r), max(m for _, m, _ in r) / 1024, sum(e for _, _, e in r)
rows = [
    ("TCP connect", "socketeer scan -p-", "socketeer", [("nmap -sT -T5 --min-rate 50000", "nmap-sT", 0.6), ("RustScan (batch 4500)", "rustscan", 0.25)]),
    ("TCP SYN", "socketeer scan -p- --syn", "socketeer-syn", [("nmap -sS -T5 --min-rate 50000", "nmap-sS", 0.6)]),
    ("UDP", "socketeer scan -p- --udp", "socketeer-udp", [("nmap -sU --min-rate 20000", "nmap-sU", 1.0)]),
]
print("| scan | tool | median time | ratio (socketeer / tool) | target | exact open set | peak RSS |")
print("|---|---|---|---|---|---|---|")
for kind, ours_label, ours, others in rows:
    t, rss, exact = cell(ours)
    print(f"| {kind} | {ours_label} | {t:.2f} s | | | {exact}/{rounds} | {rss:.1f} MB |")
    for label, name, target in others:
        ot, orss, oexact = cell(name)
        ratio = t / ot
        verdict = "met" if ratio <= target else "MISSED"
        print(f"| {kind} | {label} | {ot:.2f} s | {ratio:.2f}x | ≤ {target}x ({verdict}) | {oexact}/{rounds} | {orss:.1f} MB |")
PY
fi

[[ " $cases " == *" limits "* ]] || exit 0

# The target: its own namespace, joined to ours by a veth pair, with TCP listeners and UDP
# echo sockets on 10.19.0.2; 10.19.0.3-14 are absent (nothing answers ARP for them).
ip netns add "$target_ns"
ip -n "$target_ns" link set lo up
ip link add veth-s type veth peer name veth-t netns "$target_ns"
ip addr add 10.19.0.1/24 dev veth-s
ip link set veth-s up
ip -n "$target_ns" addr add 10.19.0.2/24 dev veth-t
ip -n "$target_ns" link set veth-t up
# A veth pair drops every frame until the kernel has acted on its carrier (up to a second).
for _ in $(seq 100); do ip -o link show veth-s | grep -q 'state UP' && break; sleep 0.05; done
limit_tcp="22,80,150"
limit_udp="7,53,123"
ip netns exec "$target_ns" python3 - "$limit_tcp" "$limit_udp" >"$work/target.log" 2>&1 <<'PY' &
import socket, sys, threading, time
keep = []
for port in map(int, sys.argv[1].split(",")):
    tcp = socket.socket(); tcp.bind(("10.19.0.2", port)); tcp.listen(1024); keep.append(tcp)
for port in map(int, sys.argv[2].split(",")):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("10.19.0.2", port))
    def echo(s=udp):
        while True:
            data, peer = s.recvfrom(2048); s.sendto(data, peer)
    threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
time.sleep(86400)
PY
target_pid=$!
for _ in $(seq 50); do grep -q ready "$work/target.log" 2>/dev/null && break; sleep 0.1; done

# limits RULE: the target's firewall limits what RULE matches to 50 packets/s.
limits() {
  ip netns exec "$target_ns" nft delete table inet bench 2>/dev/null || true
  [ -z "$1" ] && return
  ip netns exec "$target_ns" nft -f - <<NFT
table inet bench {
  chain out { type filter hook output priority 0; $1 limit rate over 50/second burst 5 packets drop; }
}
NFT
}

# reject_admin PORTS: the target rejects UDP to PORTS as administratively prohibited
# (nothing when PORTS is empty).
reject_admin() {
  ip netns exec "$target_ns" nft delete table inet bench-reject 2>/dev/null || true
  [ -z "$1" ] && return
  ip netns exec "$target_ns" nft -f - <<NFT
table inet bench-reject {
  chain in { type filter hook input priority 0; udp dport $1 reject with icmp type admin-prohibited; }
}
NFT
}

# exact CASE TOOL UP OPEN CLOSED command...: runs the command (its grepable output on
# stdout), records "CASE TOOL seconds exact", exact when the hosts up, the open ports and
# the number of closed ports are the fixture's (CLOSED as STATE:N counts ports in STATE).
exact() {
  local case=$1 tool=$2 up=$3 open=$4 closed=$5; shift 5
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/out" 2>/dev/null || true
  end=$(date +%s.%N)
  python3 - "$work/out" "$up" "$open" "$closed" "$case" "$tool" "$start" "$end" >>"$work/limit-runs" <<'PY'
import re, sys
path, up, opens, closed, case, tool, start, end = sys.argv[1:]
state, closed = closed.split(":") if ":" in closed else ("closed", closed)
seen_up, seen_open, seen_closed = set(), set(), 0
for line in open(path):
    m = re.match(r"Host: (\S+) .*Status: Up", line)
    if m:
        seen_up.add(m.group(1))
    m = re.match(r"Host: (\S+) .*Ports: ([^\t\n]*)(?:\tIgnored State: (\S+) \((\d+)\))?", line)
    if m:
        for entry in filter(None, m.group(2).split(", ")):
            fields = entry.split("/")
            if fields[1] == "open":
                seen_open.add(fields[0].strip())
            elif fields[1] == state:
                seen_closed += 1
        if m.group(3) == state:
            seen_closed += int(m.group(4))
ok = seen_up == set(up.split(",")) and seen_open == set(opens.split(",")) and seen_closed == int(closed)
print(case, tool, float(end) - float(start), int(ok))
PY
}

# want CASE: whether CASE is to be run (all of them unless LIMIT_CASES names some).
want() {
  [[ -z "${LIMIT_CASES:-}" || " $LIMIT_CASES " == *" $1 "* ]]
}

t=10.19.0.2
for _ in $(seq "$limit_rounds"); do
  if want discovery; then
    exact discovery-28 socketeer $t 22 0 "$bin" scan 10.19.0.2-14 -p 22 -oG -
    exact discovery-28 nmap $t 22 0 nmap -sS -n -p 22 10.19.0.2-14 -oG -
    exact discovery-28-pings socketeer $t 22 0 \
      setpriv --bounding-set=-net_raw --inh-caps=-net_raw -- "$bin" scan 10.19.0.2-14 -p 22 -oG -
    exact discovery-28-pings nmap $t 22 0 nmap -sS -n -p 22 10.19.0.2-14 -oG -
  fi
  want limits || continue
  ip netns exec "$target_ns" sysctl -qw net.ipv4.icmp_ratelimit=1000
  limits "tcp flags & rst == rst"
  exact rst-connect socketeer $t "$limit_tcp" 297 "$bin" scan $t -p 1-300 -oG -
  exact rst-connect nmap $t "$limit_tcp" 297 nmap -sT -n -p 1-300 $t -oG -
  exact rst-syn socketeer $t "$limit_tcp" 297 "$bin" scan $t -p 1-300 --syn -oG -
  exact rst-syn nmap $t "$limit_tcp" 297 nmap -sS -n -p 1-300 $t -oG -
  # Only the firewall's limit: the kernel's own is off for this case.
  ip netns exec "$target_ns" sysctl -qw net.ipv4.icmp_ratelimit=0
  limits "icmp type destination-unreachable"
  exact icmp-nft socketeer $t "$limit_udp" 297 "$bin" scan $t -p 1-300 --udp -oG -
  exact icmp-nft nmap $t "$limit_udp" 297 nmap -sU -n -p 1-300 $t -oG -
  # A firewall's rejects (admin prohibited) for 1001-1300, under the same limit.
  reject_admin 1001-1300
  exact icmp-adm socketeer $t "$limit_udp" filtered:300 "$bin" scan $t -p "$limit_udp",1001-1300 --udp -oG -
  exact icmp-adm nmap $t "$limit_udp" filtered:300 nmap -sU -n -p "$limit_udp",1001-1300 $t -oG -
  reject_admin ""
  ip netns exec "$target_ns" sysctl -qw net.ipv4.icmp_ratelimit=1000
  limits ""
  exact icmp-kernel socketeer $t 7 29 "$bin" scan $t -p 1-30 --udp -oG -
  exact icmp-kernel nmap $t 7 29 nmap -sU -n -p 1-30 $t -oG -
  exact absent-28 socketeer $t "$limit_tcp" 1021 "$bin" scan 10.19.0.2-14 -p 1-1024 --syn -oG -
  exact absent-28 nmap $t "$limit_tcp" 1021 nmap -sS -n -p 1-1024 10.19.0.2-14 -oG -
done

echo
echo "Targets that limit their answers, or are absent ($limit_rounds rounds):"
echo
python3 - "$work/limit-runs" "$limit_rounds" <<'PY'
import statistics, sys
path, rounds = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(path):
    case, tool, secs, ok = line.split()
    runs.setdefault((case, tool), []).append((float(secs), int(ok)))
titles = {
    "rst-connect": "nft: 50 resets/s, TCP 1-300, connect (-sT)",
    "rst-syn": "nft: 50 resets/s, TCP 1-300, SYN (-sS)",
    "icmp-nft": "nft: 50 ICMP errors/s, UDP 1-300 (-sU)",
    "icmp-adm": "nft: 50 ICMP errors/s, UDP, 300 ports rejected admin-prohibited (-sU)",
    "icmp-kernel": "kernel's default ICMP limit, UDP 1-30 (-sU)",
    "absent-28": "/28, 1 of 13 addresses there, TCP 1-1024, SYN (-sS)",
    "discovery-28": "/28 discovery, 1 of 13 there, port 22: ARP (root) vs nmap -sS",
    "discovery-28-pings": "/28 discovery, 1 of 13 there, port 22: TCP pings (no CAP_NET_RAW) vs nmap -sS",
}
print("| case | socketeer time | exact | nmap time | exact | ratio (socketeer / nmap) |")
print("|---|---|---|---|---|---|")
for case, title in titles.items():
    ours, theirs = runs.get((case, "socketeer"), []), runs.get((case, "nmap"), [])
    if not ours or not theirs:
        continue
    t, n = statistics.median(s for s, _ in ours), statistics.median(s for s, _ in theirs)
    print(f"| {title} | {t:.2f} s | {sum(o for _, o in ours)}/{rounds} | {n:.2f} s | {sum(o for _, o in theirs)}/{rounds} | {t / n:.2f}x |")
PY
