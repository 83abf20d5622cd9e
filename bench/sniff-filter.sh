#!/usr/bin/env bash
# socketeer sniff -d vs tcpdump -d on long filters: three ~1.2 KB lists of `port`
# terms joined with &&, || and newlines, as people paste them (the shapes of issue 18's
# pathological filter). For each: the instructions each writes and its best wall time
# of RUNS runs (the whole process: start, parse, compile, print; `port 53` shows what
# starting takes).
#
#   bench/sniff-filter.sh            # RUNS=5
# Needs tcpdump (installed with apt-get, as root, if missing); no root otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need tcpdump tcpdump
runs=${RUNS:-5}
build
scratch

python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
ports = lambda step, start: ["port %d" % (i * step + start) for i in range(50)]
filters = {
    "port 53 (startup)": "port 53",
    "100 ports, or": " or\n".join(ports(7, 1000) + ports(7, 1350)),
    "50 pairs, && and ||": " ||\n".join("port %d && port %d" % (i * 13 + 1, i * 17 + 3) for i in range(50)),
    "(50 ports) && (50 ports)": "(" + " ||\n".join(ports(13, 1)) + ") &&\n(" + " ||\n".join(ports(17, 3)) + ")",
}
for i, (name, text) in enumerate(filters.items()):
    open(f"{work}/{i}.filter", "w").write(text)
    open(f"{work}/{i}.name", "w").write(f"{name} ({len(text)} bytes)")
PY
# tcpdump -d wants a link type: an empty Ethernet pcap file gives it one.
python3 -c 'import struct, sys; sys.stdout.buffer.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))' >"$work/empty.pcap"

# best_of COMMAND...: the shortest wall time of $runs runs, in ms.
best_of() {
  local best=""
  for _ in $(seq "$runs"); do
    local start end took
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    took=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$took" -lt "$best" ]; then best=$took; fi
  done
  echo "$best"
}

echo "| filter | instructions socketeer / tcpdump | ratio | ms socketeer / tcpdump |"
echo "|---|---|---|---|"
for i in 0 1 2 3; do
  ours=$("$bin" sniff -d -F "$work/$i.filter" | wc -l)
  theirs=$(tcpdump -d -F "$work/$i.filter" -r "$work/empty.pcap" 2>/dev/null | wc -l)
  ours_ms=$(best_of "$bin" sniff -d -F "$work/$i.filter")
  theirs_ms=$(best_of tcpdump -d -F "$work/$i.filter" -r "$work/empty.pcap")
  ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}x')")
  echo "| $(cat "$work/$i.name") | $ours / $theirs | $ratio | $ours_ms / $theirs_ms |"
done
