#!/usr/bin/env bash
# Runs this example end to end on this machine: a plain webhook receiver
# standing in for the partner's endpoint, hookline on this folder's
# hookline.yaml, and two signed webhooks posted with curl: PagerDuty's
# published V3 incident.triggered delivery (HMAC-SHA256) and a partner's
# JSON signed with Standard Webhooks. Forged, stale and repeated requests
# are refused or dropped. Exits 0 when the receiver got both events, each
# with a Standard Webhooks signature that verifies.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$HERE/../lib/common.sh"
require

export PAGERDUTY_WEBHOOK_SECRET=example-pagerduty-secret
# The secret of the Standard Webhooks reference libraries' test vectors.
export PARTNER_WHSEC=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
export PARTNER_OUT_WHSEC=whsec_ZXhhbXBsZSBvdXRib3VuZCBzaWduaW5nIGtleSAzMmI=

say "starting the stand-in receiver"
start_mock partner sink
PARTNER_OUT_URL=$(mock_url partner)
export PARTNER_OUT_URL

say "starting hookline"
local_config "$HERE/hookline.yaml"
start_engine "$WORK/hookline.yaml"

pd=$FIXTURES/pagerduty__v3_incident_triggered.json
pd_sig="v1=$(hmac_sha256_hex "$PAGERDUTY_WEBHOOK_SECRET" "$pd")"
pd_headers=(-H 'Content-Type: application/json; charset=utf-8'
    -H 'User-Agent: PagerDuty-Webhook/V3.0'
    -H 'X-Webhook-Id: 01FKZSRAPTMF55RE69G8BQHGC6')

say "PagerDuty: a forged signature is refused"
post /v1/hooks/pagerduty "$pd" "${pd_headers[@]}" \
    -H "X-PagerDuty-Signature: v1=$(hmac_sha256_hex forged-secret "$pd")"
expect_status 401

say "PagerDuty: an incident is triggered, signed with the old and the new secret while it rotates"
post /v1/hooks/pagerduty "$pd" "${pd_headers[@]}" \
    -H "X-PagerDuty-Signature: v1=$(hmac_sha256_hex next-pagerduty-secret "$pd"),$pd_sig"
expect_status 202

partner=$FIXTURES/datadog__webhook_default_template.json
msg_id=msg_2ZH8yJz8Ul9KjQpCJgW0lJbHhXm
now=$(date +%s)
stale=$((now - 600))

say "partner: a signature made 10 minutes ago is refused (replay)"
post /v1/hooks/partner "$partner" -H "webhook-id: $msg_id" \
    -H "webhook-timestamp: $stale" \
    -H "webhook-signature: $(standard_webhooks_signature "$PARTNER_WHSEC" "$msg_id" "$stale" "$partner")"
expect_status 401

say "partner: a signed event"
signature=$(standard_webhooks_signature "$PARTNER_WHSEC" "$msg_id" "$now" "$partner")
post /v1/hooks/partner "$partner" -H "webhook-id: $msg_id" \
    -H "webhook-timestamp: $now" -H "webhook-signature: $signature"
expect_status 202

say "partner: the same message again is a duplicate"
post /v1/hooks/partner "$partner" -H "webhook-id: $msg_id" \
    -H "webhook-timestamp: $now" -H "webhook-signature: $signature"
expect_status 200

wait_accepted partner 2

say "what was delivered"
show partner --body

say "the outbound signatures, checked independently of hookline"
"$PY" "$MOCKS" verify-standard-webhooks "$WORK/partner.jsonl" "$PARTNER_OUT_WHSEC" ||
    fail "a delivery's Standard Webhooks signature does not verify"

types="$(recorded partner 1 type) $(recorded partner 2 type)" || fail "no events to read"
case $types in
"incident.triggered message" | "message incident.triggered") ;;
*) fail "the partner got events of types '$types', expected incident.triggered and message" ;;
esac
sleep 1
[ "$(grep -c '' "$WORK/partner.jsonl")" = 2 ] || {
    show partner >&2
    fail "the partner got more than the two events"
}

say "OK: both signed webhooks were accepted, forged and stale ones refused, and the partner got both events signed"
