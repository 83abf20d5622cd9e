#!/usr/bin/env bash
# How long each `socketeer check` takes, against socketeer's own server and against the
# course-style Python server in tests/fixtures/students/ that passes it, both started by
# the check (`-- COMMAND {port}`: a fresh instance per case, cases four at a time).
# There is no other grader for these protocols to race; the pair shows what the check
# itself costs (socketeer's servers answer at once) and what a student's Python adds.
#
#   bench/check.sh                 # every check, one run each
#   ROUNDS=3 bench/check.sh        # the median of 3 runs
#
# Prints a Markdown table: wall seconds of each run (median), the cases, the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need python3 python3
rounds=${ROUNDS:-1}
build
students=$PWD/tests/fixtures/students

# check args | socketeer's server | the good Python fixture
rows=(
  "echo|$bin echo serve --tcp --port {port}|python3 $students/echo_good.py {port}"
  "echo --udp|$bin echo serve --udp --port {port}|python3 $students/udp_echo_good.py {port}"
  "daytime|$bin daytime serve --tcp --time-port 0 --port {port}|python3 $students/daytime_good.py {port}"
  "time|$bin daytime serve --tcp --port 0 --time-port {port}|python3 $students/time_good.py {port}"
  "udp-ack --expect-loss 30%|$bin udp serve --loss 30% --port {port}|python3 $students/udp_ack_good.py {port}"
  "chat|$bin chat serve --port {port}|python3 $students/chat_good.py {port}"
)

# seconds CHECK_ARGS COMMAND: prints the median wall time of $rounds runs, the number of
# cases and whether the last run passed.
seconds() {
  local args=$1 command=$2 times=() cases=0 verdict=FAIL
  for _ in $(seq "$rounds"); do
    local start end out
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # the words of both are meant to split
    out=$("$bin" check $args --json -- $command || true)
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
    cases=$(grep -c '"type":"case"' <<<"$out" || true)
    verdict=$(grep '"type":"summary"' <<<"$out" | grep -q '"ok":true' && echo pass || echo FAIL)
  done
  echo "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p") $cases $verdict"
}

echo "| check | cases | socketeer's server (s) | good Python server (s) | Python / socketeer |"
echo "|---|---|---|---|---|"
for row in "${rows[@]}"; do
  IFS='|' read -r args ours theirs <<<"$row"
  read -r ours_s cases ours_verdict <<<"$(seconds "$args" "$ours")"
  read -r theirs_s _ theirs_verdict <<<"$(seconds "$args" "$theirs")"
  note=""
  [ "$ours_verdict$theirs_verdict" = passpass ] || note=" (verdicts: $ours_verdict / $theirs_verdict)"
  printf '| `%s` | %s | %.1f | %.1f | %.2fx%s |\n' "$args" "$cases" "$ours_s" "$theirs_s" \
    "$(echo "$theirs_s / $ours_s" | bc -l)" "$note"
done
