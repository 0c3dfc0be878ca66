#!/usr/bin/env bash
# Runs this example end to end on this machine: stand-ins for Slack and
# PagerDuty, hookline on this folder's hookline.yaml, and Alertmanager's
# published firing and resolved notifications posted with curl. Exits 0 when
# Slack got a message for each and PagerDuty a trigger and then a resolve.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$HERE/../lib/common.sh"
require

say "starting the stand-in receivers"
start_mock slack slack
start_mock pagerduty pagerduty

export ALERTMANAGER_TOKEN=example-alertmanager-token
SLACK_WEBHOOK_URL=$(mock_url slack)
export SLACK_WEBHOOK_URL
PAGERDUTY_EVENTS_URL=$(mock_url pagerduty)
export PAGERDUTY_EVENTS_URL
export PAGERDUTY_ROUTING_KEY=R0123456789ABCDEF0123456789ABCDE

say "starting hookline"
local_config "$HERE/hookline.yaml"
start_engine "$WORK/hookline.yaml"

say "Alertmanager's token is checked"
post /v1/hooks/alertmanager "$FIXTURES/alertmanager__firing.json" \
    -H 'Authorization: Bearer not-the-token'
expect_status 401

say "a critical alert fires"
post /v1/hooks/alertmanager "$FIXTURES/alertmanager__firing.json" \
    -H "Authorization: Bearer $ALERTMANAGER_TOKEN"
expect_status 202
wait_accepted slack 1
wait_accepted pagerduty 1

say "the alert is resolved"
post /v1/hooks/alertmanager "$FIXTURES/alertmanager__resolved.json" \
    -H "Authorization: Bearer $ALERTMANAGER_TOKEN"
expect_status 202
wait_accepted slack 2
wait_accepted pagerduty 2

say "what was delivered"
show slack
show pagerduty

first=$(recorded pagerduty 1 event_action) || fail "no PagerDuty event to read"
second=$(recorded pagerduty 2 event_action) || fail "no second PagerDuty event"
[ "$first $second" = "trigger resolve" ] ||
    fail "PagerDuty got '$first' then '$second', expected trigger then resolve"
[ "$(recorded pagerduty 1 dedup_key)" = "$(recorded pagerduty 2 dedup_key)" ] ||
    fail "the resolve does not carry the trigger's dedup_key"
resolved_text=$(recorded slack 2 text) || fail "no second Slack message"
case $resolved_text in
*Resolved*) ;;
*) fail "the second Slack message does not say the alert is resolved: $resolved_text" ;;
esac

say "OK: Slack got the alert firing and resolved; PagerDuty triggered and resolved one incident"
