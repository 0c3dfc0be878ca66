# shellcheck shell=bash
# Shared by the examples' run.sh scripts (sourced, not run): starts stand-in
# receivers and hookline on free loopback ports in a temporary folder, posts
# fixtures, waits for deliveries, and stops everything on exit.
#
# Environment:
#   HOOKLINE_BIN       the binary (default build/hookline, relative to the
#                      repository root)
#   HOOKLINE_FIXTURES  the folder of published inbound payloads (default
#                      ../shared/fixtures/inbound beside the repository)
#   HOOKLINE_LOG       where hookline's log goes (default: the temporary
#                      folder, removed at exit; printed when a step fails)
#   WAIT_SECONDS       how long to wait for each delivery (default 20)

set -euo pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$LIB_DIR/../.." && pwd)
PY=/usr/bin/python3
MOCKS=$LIB_DIR/mocks.py
FIXTURES=${HOOKLINE_FIXTURES:-$ROOT/../shared/fixtures/inbound}
HOOKLINE_BIN=${HOOKLINE_BIN:-build/hookline}
case $HOOKLINE_BIN in
/*) ;;
*) HOOKLINE_BIN=$ROOT/$HOOKLINE_BIN ;;
esac
WAIT_SECONDS=${WAIT_SECONDS:-20}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hookline-example.XXXXXX")
ENGINE_LOG=${HOOKLINE_LOG:-$WORK/hookline.log}
ENGINE_PID=""
HOOKLINE_URL=""
MOCK_PIDS=()
LAST_STATUS=""
LAST_ANSWER=""

say() { printf '\n==> %s\n' "$*"; }

fail() {
    printf '\nFAILED: %s\n' "$*" >&2
    if [ -s "$ENGINE_LOG" ]; then
        echo "--- hookline log (last 40 lines of $ENGINE_LOG):" >&2
        tail -n 40 "$ENGINE_LOG" >&2
    fi
    exit 1
}

cleanup() {
    local rc=$? erc=0
    set +e
    if [ -n "$ENGINE_PID" ] && kill -0 "$ENGINE_PID" 2>/dev/null; then
        kill -TERM "$ENGINE_PID"
        for _ in $(seq 1 200); do
            kill -0 "$ENGINE_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$ENGINE_PID" 2>/dev/null; then
            echo "FAILED: hookline did not stop within 20 s of SIGTERM" >&2
            kill -KILL "$ENGINE_PID"
            rc=1
        fi
        wait "$ENGINE_PID"
        erc=$?
        if [ "$erc" -ne 0 ] && [ "$rc" -eq 0 ]; then
            echo "FAILED: hookline exited with status $erc on SIGTERM" >&2
            tail -n 40 "$ENGINE_LOG" >&2
            rc=1
        fi
    fi
    local pid
    for pid in "${MOCK_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${MOCK_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require() {
    [ -x "$HOOKLINE_BIN" ] ||
        fail "no hookline binary at $HOOKLINE_BIN: run 'make' in $ROOT, or set HOOKLINE_BIN"
    [ -d "$FIXTURES" ] ||
        fail "no fixtures at $FIXTURES: set HOOKLINE_FIXTURES to the folder of inbound payloads"
    local tool
    for tool in curl openssl "$PY"; do
        command -v "$tool" >/dev/null || fail "$tool is needed and not installed"
    done
}

# start_mock NAME KIND [mocks.py serve options]: a stand-in receiver; its URL
# is then $(mock_url NAME), what it gets is recorded in $WORK/NAME.jsonl.
start_mock() {
    local name=$1 kind=$2
    shift 2
    : >"$WORK/$name.jsonl"
    "$PY" "$MOCKS" serve "$kind" --record "$WORK/$name.jsonl" \
        --url-file "$WORK/$name.url" "$@" >"$WORK/$name.out" 2>&1 &
    MOCK_PIDS+=($!)
    for _ in $(seq 1 100); do
        [ -s "$WORK/$name.url" ] && break
        if ! kill -0 "${MOCK_PIDS[-1]}" 2>/dev/null; then
            cat "$WORK/$name.out" >&2
            fail "the $kind receiver did not start"
        fi
        sleep 0.1
    done
    [ -s "$WORK/$name.url" ] || fail "the $kind receiver did not start within 10 s"
    printf '    %-10s %s receiver at %s\n' "$name" "$kind" "$(mock_url "$name")"
}

mock_url() { head -n 1 "$WORK/$1.url"; }

# local_config SRC: writes $WORK/hookline.yaml: the example's file changed only
# as a local run needs: a free loopback port, and outbound requests allowed to
# the stand-in receivers on loopback (the SSRF guard refuses them otherwise).
local_config() {
    local src=$1
    [ "$(grep -c '^  listen:' "$src")" = 1 ] || fail "$src: expected one server.listen line"
    if grep -q '^outbound:' "$src"; then
        fail "$src: has an outbound section; local_config adds its own"
    fi
    sed -e 's/^\(  listen:\).*/\1 127.0.0.1:0/' "$src" >"$WORK/hookline.yaml"
    printf '%s\n' '' '# Added for the local run: the receivers are on loopback.' \
        'outbound:' '  allow_networks: [127.0.0.0/8]' >>"$WORK/hookline.yaml"
}

# start_engine CONFIG: check it, run hookline on it (its store under $WORK),
# and wait until it listens; sets HOOKLINE_URL.
start_engine() {
    local config=$1 port=""
    if ! "$HOOKLINE_BIN" check -c "$config" >"$WORK/check.out" 2>&1; then
        cat "$WORK/check.out" >&2
        fail "hookline check refused $config"
    fi
    sed 's/^/    /' "$WORK/check.out"
    (cd "$WORK" && exec "$HOOKLINE_BIN" run -c "$config") 2>"$ENGINE_LOG" &
    ENGINE_PID=$!
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*http: listening addr=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$ENGINE_LOG" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$ENGINE_PID" 2>/dev/null || fail "hookline exited before it listened"
        sleep 0.1
    done
    [ -n "$port" ] || fail "hookline did not listen within 20 s"
    HOOKLINE_URL=http://127.0.0.1:$port
    printf '    hookline   listening on %s (log: %s)\n' "$HOOKLINE_URL" "$ENGINE_LOG"
}

# post PATH FILE [curl options]: POST a JSON file to hookline; sets
# LAST_STATUS and LAST_ANSWER and prints both.
post() {
    local path=$1 file=$2
    shift 2
    [ -r "$file" ] || fail "cannot read $file"
    LAST_STATUS=$(curl -sS -o "$WORK/answer" -w '%{http_code}' --max-time 10 \
        -X POST "$HOOKLINE_URL$path" -H 'Content-Type: application/json' \
        --data-binary "@$file" "$@") || fail "curl could not post to $HOOKLINE_URL$path"
    LAST_ANSWER=$(cat "$WORK/answer")
    printf '    POST %s (%s) -> %s %s\n' "$path" "$(basename "$file")" \
        "$LAST_STATUS" "$LAST_ANSWER"
}

expect_status() {
    [ "$LAST_STATUS" = "$1" ] ||
        fail "hookline answered $LAST_STATUS, expected $1: $LAST_ANSWER"
}

# wait_accepted NAME N: wait until receiver NAME accepted N requests; fails
# at once if it refused one (the connector sent something the service would
# not take), and after WAIT_SECONDS if they did not all come.
wait_accepted() {
    local name=$1 want=$2 got=0 refused=0 deadline=$((SECONDS + WAIT_SECONDS))
    while :; do
        got=$(grep -c '^{"accepted": true' "$WORK/$name.jsonl" || true)
        refused=$(grep -c '^{"accepted": false' "$WORK/$name.jsonl" || true)
        if [ "$refused" -gt 0 ]; then
            show "$name" >&2
            fail "$name refused $refused request(s)"
        fi
        [ "$got" -ge "$want" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            show "$name" >&2
            fail "$name received $got request(s) within ${WAIT_SECONDS} s, expected $want"
        fi
        sleep 0.2
    done
}

show() {
    echo "--- what $1 received:"
    "$PY" "$MOCKS" show "$WORK/$1.jsonl" "${@:2}"
}

# The i-th recorded request body of receiver NAME (from 1), for checks.
recorded() {
    "$PY" - "$WORK/$1.jsonl" "$2" "$3" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rec = recs[int(sys.argv[2]) - 1]
value = json.loads(rec["body"])
for part in sys.argv[3].split("."):
    value = value[int(part)] if isinstance(value, list) else value[part]
print(value)
EOF
}

# hmac_sha256_hex SECRET FILE
hmac_sha256_hex() {
    openssl dgst -sha256 -hmac "$1" -r "$2" | cut -d' ' -f1
}

# standard_webhooks_signature WHSEC MSG_ID TIMESTAMP FILE: "v1,<base64>" over
# "MSG_ID.TIMESTAMP.BODY", keyed with the secret's base64-decoded bytes.
standard_webhooks_signature() {
    local key_hex
    key_hex=$(printf '%s' "${1#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    printf 'v1,%s' "$({ printf '%s.%s.' "$2" "$3"; cat "$4"; } |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64 -w0)"
}
