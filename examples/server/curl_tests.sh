#!/usr/bin/env bash
# The original design's three curl tests, as written, against a running server.
#
#   examples/server/curl_tests.sh [BASE_URL]     (default http://127.0.0.1:8000)
#
# Each run uses client ids of its own, so it also runs against a database that
# already holds events (the demo's ./data.db).
set -euo pipefail

BASE="${1:-${BASE_URL:-http://127.0.0.1:8000}}"
RUN="curl-$$-$(date +%s%N)"
PASS=0
FAIL=0
TMP="$(mktemp)"
trap 'rm -f "$TMP"' EXIT

# request METHOD PATH [BODY]: sets CODE and BODY.
request() {
  local args=(--silent --show-error --max-time 10 -o "$TMP" -w '%{http_code}' -X "$1"
              -H 'Content-Type: application/json')
  if [ $# -ge 3 ]; then args+=(--data-binary "$3"); fi
  CODE="$(curl "${args[@]}" "$BASE$2")" || CODE="000"
  BODY="$(cat "$TMP")"
}

check() { # check DESCRIPTION CONDITION...
  local what="$1"; shift
  if "$@"; then
    PASS=$((PASS + 1)); echo "ok - $what"
  else
    FAIL=$((FAIL + 1)); echo "not ok - $what (HTTP $CODE: $BODY)"
  fi
}

is() { [ "$CODE" = "$1" ]; }
has() { grep -Eq "$1" <<<"$BODY"; }

# count CLIENT: how many events of CLIENT are stored (from the aggregate).
count() {
  request GET "/api/aggregate?clientId=$1"
  grep -Eo '"count": ?[0-9]+' <<<"$BODY" | head -n1 | grep -Eo '[0-9]+$' || echo "?"
}

echo "# curl tests against $BASE"

# Test 1: the same event twice is stored once.
A="$RUN-A"
EVENT_A="{\"source\": \"$A\", \"payload\": {\"metric\": \"sales\", \"value\": 1200, \"timestamp\": \"2024-01-01\"}}"
request POST /api/events "$EVENT_A"
check "1a: a new event is accepted with 201" is 201
check "1a: the answer says accepted" has '"status": ?"accepted"'
request POST /api/events "$EVENT_A"
check "1b: the same event again is a duplicate with 200" is 200
check "1b: the answer says duplicate" has '"status": ?"duplicate"'
N="$(count "$A")"
check "1c: the count stays 1 (got $N)" test "$N" = 1

# Test 2: missing amount and timestamp: rejected with both reasons, not stored.
C="$RUN-C"
request POST /api/events "{\"source\": \"$C\", \"payload\": {\"metric\": \"views\"}}"
check "2a: an event missing amount and timestamp is rejected with 422" is 422
check "2a: the reasons name amount" has '"field": ?"amount"'
check "2a: the reasons name timestamp" has '"field": ?"timestamp"'
check "2a: both reasons are missing_field" has '"code": ?"missing_field".*"code": ?"missing_field"'
N="$(count "$C")"
check "2b: nothing is stored (got $N)" test "$N" = 0

# Test 3: a write that fails half-way stores nothing; the retry stores it once.
D="$RUN-D"
EVENT_D="{\"source\": \"$D\", \"payload\": {\"metric\": \"sales\", \"value\": 50, \"timestamp\": \"2024-01-03T10:00:00Z\"}}"
request POST /api/simulate-failure
# The toggle answers the new state; if it was already on, it is now off.
if has '"enabled": ?false'; then request POST /api/simulate-failure; fi
check "3a: failure simulation is on" has '"enabled": ?true'
request POST /api/events "$EVENT_D"
check "3b: the event fails with 500" is 500
check "3b: the error body has a message" has '"message": ?"'
N="$(count "$D")"
check "3c: nothing is stored (got $N)" test "$N" = 0
request POST /api/events "$EVENT_D"
check "3d: the retry is accepted with 201" is 201
request POST /api/events "$EVENT_D"
check "3e: again: a duplicate with 200" is 200
N="$(count "$D")"
check "3f: stored exactly once (got $N)" test "$N" = 1

echo "# $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
