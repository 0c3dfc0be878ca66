#!/usr/bin/env bash
# Runs this example end to end on this machine: a stand-in for a Teams
# workflow webhook, hookline on this folder's hookline.yaml, and Grafana's
# published webhook notification (two alerts firing) posted with curl, signed
# as Grafana signs it. Exits 0 when Teams got one card per alert.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$HERE/../lib/common.sh"
require

export GRAFANA_WEBHOOK_SECRET=example-grafana-secret

say "starting the stand-in receiver"
start_mock teams teams
TEAMS_WEBHOOK_URL=$(mock_url teams)
export TEAMS_WEBHOOK_URL

say "starting hookline"
local_config "$HERE/hookline.yaml"
start_engine "$WORK/hookline.yaml"

fixture=$FIXTURES/grafana__unified_alerting_webhook_firing.json

say "an unsigned notification is refused"
post /v1/hooks/grafana "$fixture"
expect_status 401

# Grafana signs "TIMESTAMP:BODY" when given a timestamp header.
ts=$(date +%s)
signed=$WORK/grafana-signed
{ printf '%s:' "$ts"; cat "$fixture"; } > "$signed"
signature=$(hmac_sha256_hex "$GRAFANA_WEBHOOK_SECRET" "$signed")

say "a notification signed an hour ago is refused (a replay)"
old=$WORK/grafana-old
{ printf '%s:' "$((ts - 3600))"; cat "$fixture"; } > "$old"
post /v1/hooks/grafana "$fixture" \
    -H "X-Grafana-Alerting-Signature: $(hmac_sha256_hex "$GRAFANA_WEBHOOK_SECRET" "$old")" \
    -H "X-Grafana-Alerting-Timestamp: $((ts - 3600))"
expect_status 401

say "Grafana notifies: two alerts firing"
post /v1/hooks/grafana "$fixture" \
    -H "X-Grafana-Alerting-Signature: $signature" \
    -H "X-Grafana-Alerting-Timestamp: $ts" \
    -H 'User-Agent: Grafana'
expect_status 202
wait_accepted teams 2

say "what was delivered"
show teams

titles=""
for i in 1 2; do
    t=$(recorded teams "$i" attachments.0.content.body.0.text) || fail "no card $i to read"
    titles="$titles|$t"
done
case $titles in
*"[blue] This alert was triggered for zone us-1"*"[blue] This alert was triggered for zone eu-1"* | \
    *"[blue] This alert was triggered for zone eu-1"*"[blue] This alert was triggered for zone us-1"*) ;;
*) fail "the cards' titles are not the two alerts' summaries with their team: $titles" ;;
esac

say "OK: Teams got one card for each of Grafana's two alerts"
