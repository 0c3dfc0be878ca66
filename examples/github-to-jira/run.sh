#!/usr/bin/env bash
# Runs this example end to end on this machine: a stand-in for Jira, hookline
# on this folder's hookline.yaml, and GitHub's published issues, pull_request
# and push payloads posted with curl, signed as GitHub signs them. Exits 0
# when Jira got one new issue for the issue and one for the pull request.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$HERE/../lib/common.sh"
require

export GITHUB_WEBHOOK_SECRET=example-github-secret
export JIRA_EMAIL_AND_TOKEN=ops@example.com:example-jira-token

say "starting the stand-in receiver"
start_mock jira jira --jira-basic "$JIRA_EMAIL_AND_TOKEN" --jira-project OPS
JIRA_URL=$(mock_url jira)
export JIRA_URL

say "starting hookline"
local_config "$HERE/hookline.yaml"
start_engine "$WORK/hookline.yaml"

# deliver EVENT FIXTURE DELIVERY-ID [SECRET]: post as GitHub does.
deliver() {
    local event=$1 file=$FIXTURES/$2 id=$3 secret=${4:-$GITHUB_WEBHOOK_SECRET}
    post /v1/hooks/github "$file" \
        -H "X-GitHub-Event: $event" \
        -H "X-GitHub-Delivery: $id" \
        -H "X-Hub-Signature-256: sha256=$(hmac_sha256_hex "$secret" "$file")" \
        -H 'User-Agent: GitHub-Hookshot/044aadd'
}

say "a delivery signed with another secret is refused"
deliver issues github__issues_opened.json 72d3162e-cc78-11e3-81ab-4c9367dc0958 wrong-secret
expect_status 401

say "an issue is opened"
deliver issues github__issues_opened.json 72d3162e-cc78-11e3-81ab-4c9367dc0958
expect_status 202
wait_accepted jira 1

say "GitHub redelivers it: a duplicate, not queued again"
deliver issues github__issues_opened.json 72d3162e-cc78-11e3-81ab-4c9367dc0958
expect_status 200

say "a pull request is opened, and a branch is pushed (no route: stored only)"
deliver pull_request github__pull_request_opened.json 8f2c7b10-cc78-11e3-8a4e-4c9367dc0958
expect_status 202
deliver push github__push.json 9a1e5f20-cc78-11e3-9b5f-4c9367dc0958
expect_status 202
wait_accepted jira 2

say "what was delivered"
show jira

first=$(recorded jira 1 fields.summary) || fail "no Jira issue to read"
second=$(recorded jira 2 fields.summary) || fail "no second Jira issue"
case $first in
*"#1 opened"*) ;;
*) fail "the first Jira issue is not GitHub issue #1: $first" ;;
esac
case $second in
*"#2 opened"*) ;;
*) fail "the second Jira issue is not pull request #2: $second" ;;
esac
# Whatever else arrives in the next second would be the redelivery or the push.
sleep 1
[ "$(grep -c '' "$WORK/jira.jsonl")" = 2 ] || {
    show jira >&2
    fail "Jira got more than the two new issues"
}

say "OK: Jira has one issue for GitHub issue #1 and one for pull request #2; the redelivery and the push filed nothing"
