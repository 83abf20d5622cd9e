#!/usr/bin/env bash
# File transfer over UDP on loopback, side by side in one run with the TFTP tools users know:
#   stop-and-wait      vs  atftp (blksize 1428) against tftpd-hpa (both TFTP: one block per round trip)
#   go-back-n, sel.rep vs  atftp (blksize 1428, windowsize 64, RFC 7440) against atftpd
# Every transfer moves the same random file; each cell is the median of ROUNDS rounds.
#
#   bench/transfer.sh                  # 50 MB, 3 rounds
#   SIZE_MB=20 ROUNDS=5 bench/transfer.sh
#
# Stop-and-wait is one context switch each way per block, so on this 2-core VM its speed
# depends on whether the two ends share a core (a wake-up across cores costs ~50 µs here,
# on the same core ~8 µs): the stop-and-wait rows pin both ends of both tools to core 0.
# tftpd-hpa and atftpd conflict as Debian packages, so their binaries are unpacked into a
# temporary directory (apt-get download + dpkg -x) instead of installed. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
size_mb=${SIZE_MB:-50}
rounds=${ROUNDS:-3}

need atftp atftp
build

scratch

(cd "$work" && chmod 777 . && apt-get download -qq tftpd-hpa atftpd >/dev/null && for deb in *.deb; do dpkg -x "$deb" root; done)
sbin=$work/root/usr/sbin
mkdir -p "$work/serve" "$work/got" "$work/inbox"
head -c "$((size_mb * 1000 * 1000))" /dev/urandom >"$work/serve/bench.bin"

hpa_port=$(free_port udp) atftpd_port=$(free_port udp) ours_port=$(free_port udp)
taskset -c 0 "$sbin/in.tftpd" -L -l -a "127.0.0.1:$hpa_port" -s "$work/serve" & pids+=($!)
"$sbin/atftpd" --daemon --no-fork --user root --group root --port "$atftpd_port" --bind-address 127.0.0.1 \
  --logfile /dev/null "$work/serve" & pids+=($!)
"$bin" -q transfer recv --port "$ours_port" --dir "$work/inbox" --overwrite >/dev/null & pids+=($!)
sleep 1

seconds() { # command... -> wall seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
pin=() # a prefix for the clients: taskset for the stop-and-wait rows
atftp_get() { # port extra-options...
  local port=$1; shift
  rm -f "$work/got/bench.bin"
  seconds "${pin[@]}" atftp --get -r bench.bin -l "$work/got/bench.bin" --option "blksize 1428" "$@" 127.0.0.1 "$port"
  cmp -s "$work/got/bench.bin" "$work/serve/bench.bin" || { echo "atftp got a different file" >&2; exit 1; }
}
ours() { # protocol extra...
  local protocol=$1; shift
  seconds "${pin[@]}" "$bin" transfer send "$work/serve/bench.bin" "127.0.0.1:$ours_port" -p "$protocol" "$@"
  cmp -s "$work/inbox/bench.bin" "$work/serve/bench.bin" || { echo "socketeer stored a different file" >&2; exit 1; }
}

# The receiving server runs unpinned; for the stop-and-wait rows it is pinned with the sender.
ours_pid=${pids[2]}
: >"$work/times"
for _ in $(seq "$rounds"); do
  taskset -a -cp 0 "$ours_pid" >/dev/null
  pin=(taskset -c 0)
  echo "tftp-sw $(atftp_get "$hpa_port")" >>"$work/times"
  echo "ours-sw $(ours stop-and-wait)" >>"$work/times"
  pin=()
  taskset -a -cp 0-1 "$ours_pid" >/dev/null
  echo "tftp-w64 $(atftp_get "$atftpd_port" --option "windowsize 64")" >>"$work/times"
  echo "ours-gbn64 $(ours go-back-n -w 64)" >>"$work/times"
  echo "ours-sr64 $(ours selective-repeat -w 64)" >>"$work/times"
  echo "ours-gbn256 $(ours go-back-n -w 256)" >>"$work/times"
  echo "ours-sr256 $(ours selective-repeat -w 256)" >>"$work/times"
done

python3 - "$work/times" "$size_mb" "$rounds" <<'PY'
import statistics, sys, datetime
path, size_mb, rounds = sys.argv[1], float(sys.argv[2]), sys.argv[3]
times = {}
for line in open(path):
    name, secs = line.split()
    times.setdefault(name, []).append(float(secs))
rate = {name: size_mb / statistics.median(v) for name, v in times.items()}
print(f"# bench/transfer.sh: {size_mb:.0f} MB, 1400-byte blocks (TFTP 1428), median of {rounds} rounds, {datetime.date.today()}")
print()
print("| transfer | MB/s | anchor | anchor MB/s | ratio |")
print("|---|---|---|---|---|")
rows = [
    ("socketeer stop-and-wait (one core)", "ours-sw", "atftp → tftpd-hpa (one core)", "tftp-sw"),
    ("socketeer go-back-n, window 64", "ours-gbn64", "atftp → atftpd, windowsize 64", "tftp-w64"),
    ("socketeer selective-repeat, window 64", "ours-sr64", "atftp → atftpd, windowsize 64", "tftp-w64"),
    ("socketeer go-back-n, window 256", "ours-gbn256", "atftp → atftpd, windowsize 64", "tftp-w64"),
    ("socketeer selective-repeat, window 256", "ours-sr256", "atftp → atftpd, windowsize 64", "tftp-w64"),
]
for label, ours, anchor_label, anchor in rows:
    print(f"| {label} | {rate[ours]:.1f} | {anchor_label} | {rate[anchor]:.1f} | {rate[ours] / rate[anchor]:.2f}x |")
PY
