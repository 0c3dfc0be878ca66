/* test_verify.c - inbound signature and token checks, outbound signing. */
#include "err.h"
#include "verify.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

/* vectors.json "github_sha256" (GitHub docs, "Validating webhook
 * deliveries"). */
#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_HEADER "X-Hub-Signature-256"
#define GH_HEX                                                                 \
    "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
#define GH_VALUE "sha256=" GH_HEX

/* vectors.json "standard_webhooks" (standard-webhooks reference libraries,
 * test_sign). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS "1614265330"
#define SW_NOW INT64_C(1614265330)
#define SW_BODY "{\"test\": 2432232314}"
#define SW_B64 "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SW_SIG "v1," SW_B64
#define SW_WRONG "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="

/* HMAC-SHA1 / HMAC-SHA512 of GH_BODY keyed with GH_SECRET, computed with
 * python3 hmac.new(b"It's a Secret to Everybody", b"Hello, World!", ...). */
#define SHA1_HEX "01dc10d0c83e72ed246219cdd91669667fe2ca59"
#define SHA512_B64                                                             \
    "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNXvX46QgE/8Hw3b4wUz1zBkj2iC1HWQlay+4678QCq" \
    "Z6YTJvYf6oERvA=="

/* Slack v0: HMAC-SHA256 of "v0:" TS ":" BODY, computed with python3 hmac. */
#define SLACK_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define SLACK_SECRET2 "new-slack-secret-after-rotation"
#define SLACK_TS "1531420618"
#define SLACK_NOW INT64_C(1531420618)
#define SLACK_BODY "token=xyz&team_id=T1DC2JH3J&command=%2Fdeploy"
#define SLACK_HEX                                                              \
    "1ff7def0fdccda21f31d7ad0818ba6d5a7356b39cab6b0191545b48faff0c7dc"
#define SLACK2_HEX                                                             \
    "a2ade21ae8e56820dee08eeef3f3fbb75c556fab443f0a768acc01cee40bbd9e"

#define TOKEN "am-token-3f9c1e"
#define TOKEN2 "am-token-rotated-77a2"

/* Everything a failure message must never contain. */
static const char *const never_shown[] = {
    GH_SECRET,    GH_HEX,        SW_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    SW_B64,       SW_WRONG,      SHA1_HEX,  "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNX",
    SLACK_SECRET, SLACK_SECRET2, SLACK_HEX, TOKEN,
    TOKEN2,
};

typedef struct {
    const char *name, *value;
} hdr;

/* h is an array ended by {NULL, NULL}. */
static const char *get_header(void *ctx, const char *name)
{
    for (const hdr *h = ctx; h->name; h++)
        if (!strcasecmp(h->name, name))
            return h->value;
    return NULL;
}

static int run(const hl_verify_cfg *v, const hdr *h, const char *body,
               int64_t now, char *why, size_t whylen)
{
    return hl_verify_request(v, get_header, (void *)h, body, strlen(body), now,
                             why, whylen);
}

static void pass(const hl_verify_cfg *v, const hdr *h, const char *body,
                 int64_t now)
{
    char why[256] = "not written";
    assert_int_equal(run(v, h, body, now, why, sizeof why), 0);
    assert_string_equal(why, "");
}

static void expect_fail(const hl_verify_cfg *v, const hdr *h, const char *body,
                        int64_t now, int code, const char *msg)
{
    char why[256];
    assert_int_equal(run(v, h, body, now, why, sizeof why), code);
    assert_string_equal(why, msg);
    for (size_t i = 0; i < sizeof never_shown / sizeof never_shown[0]; i++)
        assert_null(strstr(why, never_shown[i]));
}

static const char *gh_secrets[] = {GH_SECRET};
static const char *sw_secrets[] = {SW_SECRET};
static const char *slack_secrets[] = {SLACK_SECRET};
static const char *tokens[] = {TOKEN};

static hl_verify_cfg hmac_cfg(int alg, const char *prefix, int enc)
{
    hl_verify_cfg v = {0};
    v.hmac_set = true;
    v.hmac.header = GH_HEADER;
    v.hmac.algorithm = alg;
    v.hmac.prefix = prefix;
    v.hmac.encoding = enc;
    v.hmac.secrets = (hl_strlist){gh_secrets, 1};
    return v;
}

static hl_verify_cfg gh_cfg(void)
{
    return hmac_cfg(HL_HASH_SHA256, "sha256=", HL_ENC_HEX);
}

static hl_verify_cfg sw_cfg(void)
{
    hl_verify_cfg v = {0};
    v.standard_webhooks_set = true;
    v.standard_webhooks.secrets = (hl_strlist){sw_secrets, 1};
    v.standard_webhooks.tolerance_ms = 300000;
    return v;
}

static hl_verify_cfg slack_cfg(void)
{
    hl_verify_cfg v = {0};
    v.slack_set = true;
    v.slack.secrets = (hl_strlist){slack_secrets, 1};
    v.slack.tolerance_ms = 300000;
    return v;
}

static hl_verify_cfg bearer_cfg(void)
{
    hl_verify_cfg v = {0};
    v.bearer_set = true;
    v.bearer.tokens = (hl_strlist){tokens, 1};
    return v;
}

static void sw_expect(const char *ts, const char *sig, int64_t now,
                      const char *msg)
{
    hl_verify_cfg v = sw_cfg();
    hdr h[] = {{"webhook-id", SW_ID},
               {"webhook-timestamp", ts},
               {"webhook-signature", sig},
               {NULL, NULL}};
    if (msg)
        expect_fail(&v, h, SW_BODY, now, HL_EVERIFY, msg);
    else
        pass(&v, h, SW_BODY, now);
}

static void slack_expect(const char *ts, const char *sig, int64_t now,
                         const char *msg)
{
    hl_verify_cfg v = slack_cfg();
    hdr h[] = {{"X-Slack-Request-Timestamp", ts},
               {"X-Slack-Signature", sig},
               {NULL, NULL}};
    if (msg)
        expect_fail(&v, h, SLACK_BODY, now, HL_EVERIFY, msg);
    else
        pass(&v, h, SLACK_BODY, now);
}

static void gh_expect(const char *value, const char *msg)
{
    hl_verify_cfg v = gh_cfg();
    hdr h[] = {{GH_HEADER, value}, {NULL, NULL}};
    if (msg)
        expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY, msg);
    else
        pass(&v, h, GH_BODY, 0);
}

static void bearer_expect(const char *value, const char *msg)
{
    hl_verify_cfg v = bearer_cfg();
    hdr h[] = {{"authorization", value}, {NULL, NULL}};
    if (msg)
        expect_fail(&v, h, "{}", 0, HL_EVERIFY, msg);
    else
        pass(&v, h, "{}", 0);
}

/* --- known answers ------------------------------------------------------ */

static void test_github_vector_passes(void **state)
{
    (void)state;
    gh_expect(GH_VALUE, NULL);
}

static void test_github_vector_uppercase_hex_and_whitespace_pass(void **state)
{
    (void)state;
    gh_expect(" \tsha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4"
              "379C8B043E17  ",
              NULL);
}

static void test_github_vector_other_body_fails(void **state)
{
    (void)state;
    hl_verify_cfg v = gh_cfg();
    hdr h[] = {{GH_HEADER, GH_VALUE}, {NULL, NULL}};
    expect_fail(&v, h, "Hello, World?", 0, HL_EVERIFY,
                "hmac: signature does not match any configured secret");
}

static void test_standard_webhooks_vector_passes(void **state)
{
    (void)state;
    sw_expect(SW_TS, SW_SIG, SW_NOW, NULL);
}

static void test_standard_webhooks_vector_wrong_signature_fails(void **state)
{
    (void)state;
    sw_expect(SW_TS, SW_WRONG, SW_NOW,
              "standard_webhooks: signature does not match any configured "
              "secret");
}

static void test_hmac_sha1_hex(void **state)
{
    (void)state;
    hl_verify_cfg v = hmac_cfg(HL_HASH_SHA1, "sha1=", HL_ENC_HEX);
    hdr ok[] = {{GH_HEADER, "sha1=" SHA1_HEX}, {NULL, NULL}};
    pass(&v, ok, GH_BODY, 0);
    hdr bad[] = {{GH_HEADER, "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca58"},
                 {NULL, NULL}};
    expect_fail(&v, bad, GH_BODY, 0, HL_EVERIFY,
                "hmac: signature does not match any configured secret");
}

static void test_hmac_sha512_base64_without_prefix(void **state)
{
    (void)state;
    hl_verify_cfg v = hmac_cfg(HL_HASH_SHA512, NULL, HL_ENC_BASE64);
    hdr ok[] = {{GH_HEADER, SHA512_B64}, {NULL, NULL}};
    pass(&v, ok, GH_BODY, 0);
    expect_fail(&v, ok, "Hello, World", 0, HL_EVERIFY,
                "hmac: signature does not match any configured secret");
}

/* --- rotation ----------------------------------------------------------- */

static void test_hmac_rotation_second_secret_matches(void **state)
{
    (void)state;
    const char *secrets[] = {"old-github-secret", GH_SECRET};
    hl_verify_cfg v = gh_cfg();
    v.hmac.secrets = (hl_strlist){secrets, 2};
    hdr h[] = {{GH_HEADER, GH_VALUE}, {NULL, NULL}};
    pass(&v, h, GH_BODY, 0);
    v.hmac.secrets.n = 1;
    expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                "hmac: signature does not match any configured secret");
}

static void test_standard_webhooks_rotation_second_secret_matches(void **state)
{
    (void)state;
    const char *secrets[] = {"whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=",
                             SW_SECRET};
    hl_verify_cfg v = sw_cfg();
    v.standard_webhooks.secrets = (hl_strlist){secrets, 2};
    hdr h[] = {{"webhook-id", SW_ID},
               {"webhook-timestamp", SW_TS},
               {"webhook-signature", SW_SIG},
               {NULL, NULL}};
    pass(&v, h, SW_BODY, SW_NOW);
    v.standard_webhooks.secrets.n = 1;
    expect_fail(&v, h, SW_BODY, SW_NOW, HL_EVERIFY,
                "standard_webhooks: signature does not match any configured "
                "secret");
}

static void test_standard_webhooks_only_last_of_several_valid(void **state)
{
    (void)state;
    sw_expect(SW_TS,
              SW_WRONG
              " v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe4= " SW_SIG,
              SW_NOW, NULL);
    /* the same bytes under another version do not count */
    sw_expect(SW_TS, SW_WRONG " v1a," SW_B64, SW_NOW,
              "standard_webhooks: signature does not match any configured "
              "secret");
}

static void test_slack_passes_and_rotates(void **state)
{
    (void)state;
    slack_expect(SLACK_TS, "v0=" SLACK_HEX, SLACK_NOW, NULL);
    const char *secrets[] = {SLACK_SECRET, SLACK_SECRET2};
    hl_verify_cfg v = slack_cfg();
    v.slack.secrets = (hl_strlist){secrets, 2};
    hdr h[] = {{"X-Slack-Request-Timestamp", SLACK_TS},
               {"X-Slack-Signature", "v0=" SLACK2_HEX},
               {NULL, NULL}};
    pass(&v, h, SLACK_BODY, SLACK_NOW);
    v.slack.secrets.n = 1;
    expect_fail(&v, h, SLACK_BODY, SLACK_NOW, HL_EVERIFY,
                "slack: signature does not match any configured secret");
}

static void test_bearer_passes_any_token_any_scheme_case(void **state)
{
    (void)state;
    bearer_expect("Bearer " TOKEN, NULL);
    bearer_expect("  bEaReR \t" TOKEN " ", NULL);
    const char *both[] = {TOKEN, TOKEN2};
    hl_verify_cfg v = bearer_cfg();
    v.bearer.tokens = (hl_strlist){both, 2};
    hdr h[] = {{"Authorization", "Bearer " TOKEN2}, {NULL, NULL}};
    pass(&v, h, "", 0);
}

/* --- hmac failures ------------------------------------------------------ */

static void test_hmac_missing_header(void **state)
{
    (void)state;
    hl_verify_cfg v = gh_cfg();
    hdr h[] = {{"X-Hub-Signature", "sha1=" SHA1_HEX}, {NULL, NULL}};
    expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                "hmac: header X-Hub-Signature-256 is missing");
}

static void test_hmac_wrong_prefix(void **state)
{
    (void)state;
    gh_expect("sha1=" GH_HEX,
              "hmac: header X-Hub-Signature-256 does not start with "
              "\"sha256=\"");
    gh_expect(GH_HEX, "hmac: header X-Hub-Signature-256 does not start with "
                      "\"sha256=\"");
}

static void test_hmac_bad_hex(void **state)
{
    (void)state;
    gh_expect("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c"
              "8b043e1g",
              "hmac: signature is not valid hex");
    gh_expect("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c"
              "8b043e1",
              "hmac: signature is not valid hex");
    gh_expect("sha256=", "hmac: signature is not valid hex");
}

static void test_hmac_bad_base64(void **state)
{
    (void)state;
    hl_verify_cfg v = hmac_cfg(HL_HASH_SHA512, NULL, HL_ENC_BASE64);
    static const char *const bad[] = {
        "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNXvX46QgE/8Hw3b4wUz1zBkj2iC1HWQlay+4678"
        "QCqZ6YTJvYf6oERvA=", /* length not a multiple of 4 */
        "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNXvX46QgE/8Hw3b4wUz1zBkj2iC1HWQlay+4678"
        "QCqZ6YTJvYf6oER*==", /* not in the alphabet */
        "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNXvX46QgE/8Hw3b4wUz1zBkj2iC1HWQlay+4678"
        "QCqZ6YTJvYf6o=RvA==", /* '=' inside */
        "Ee01WmF-mBNOhCASp5RMz1nBAlbLGCNXvX46QgE_8Hw3b4wUz1zBkj2iC1HWQlay-4678"
        "QCqZ6YTJvYf6oERvA==", /* base64url */
        "  ",                  /* empty */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hdr h[] = {{GH_HEADER, bad[i]}, {NULL, NULL}};
        expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                    "hmac: signature is not valid base64");
    }
}

static void test_hmac_wrong_length(void **state)
{
    (void)state;
    gh_expect("sha256=" SHA1_HEX, "hmac: signature is not as long as a sha256 "
                                  "HMAC; check the algorithm and the encoding");
    hl_verify_cfg v = hmac_cfg(HL_HASH_SHA256, NULL, HL_ENC_BASE64);
    hdr h[] = {{GH_HEADER, SHA512_B64}, {NULL, NULL}};
    expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                "hmac: signature is not as long as a sha256 HMAC; check the "
                "algorithm and the encoding");
}

/* PagerDuty signs with every secret of a subscription while one rotates:
 * "v1=<hex>,v1=<hex>"; any one signature may match. */
static void test_hmac_several_signatures(void **state)
{
    (void)state;
    hl_verify_cfg v = hmac_cfg(HL_HASH_SHA256, "v1=", HL_ENC_HEX);
    char good[200], header[600];
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA256, HL_ENC_HEX, "v1=",
                                  v.hmac.secrets.v[0], GH_BODY,
                                  strlen(GH_BODY), good, sizeof good),
                     0);
    const char *other =
        "v1=0000000000000000000000000000000000000000000000000000000000000000";
    snprintf(header, sizeof header, "%s, %s", other, good);
    hdr h[] = {{"X-Sig", header}, {NULL, NULL}};
    v.hmac.header = "X-Sig";
    pass(&v, h, GH_BODY, 0);
    snprintf(header, sizeof header, "%s,%s", good, other);
    pass(&v, h, GH_BODY, 0);
    snprintf(header, sizeof header, "%s,%s", other, other);
    expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                "hmac: signature does not match any configured secret");
    snprintf(header, sizeof header, "%s,sha=00", other);
    expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                "hmac: header X-Sig does not start with \"v1=\"");
}

/* Grafana, given a timestamp header, signs "TIMESTAMP:BODY". */
static void test_hmac_with_timestamp_header(void **state)
{
    (void)state;
    hl_verify_cfg v = hmac_cfg(HL_HASH_SHA256, NULL, HL_ENC_HEX);
    v.hmac.header = "X-Grafana-Alerting-Signature";
    v.hmac.timestamp_header = "X-Grafana-Alerting-Timestamp";
    v.hmac.tolerance_ms = 300000;
    char signed_text[256], sig[200];
    snprintf(signed_text, sizeof signed_text, "1700000000:%s", GH_BODY);
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA256, HL_ENC_HEX, NULL,
                                  v.hmac.secrets.v[0], signed_text,
                                  strlen(signed_text), sig, sizeof sig),
                     0);
    hdr h[] = {{"X-Grafana-Alerting-Signature", sig},
               {"X-Grafana-Alerting-Timestamp", "1700000000"},
               {NULL, NULL}};
    pass(&v, h, GH_BODY, 1700000100);
    expect_fail(&v, h, GH_BODY, 1700001000, HL_EVERIFY,
                "hmac: X-Grafana-Alerting-Timestamp is outside the 5m "
                "tolerance (16m40s in the past); check the sender's clock");
    hdr other[] = {{"X-Grafana-Alerting-Signature", sig},
                   {"X-Grafana-Alerting-Timestamp", "1700000001"},
                   {NULL, NULL}};
    expect_fail(&v, other, GH_BODY, 1700000100, HL_EVERIFY,
                "hmac: signature does not match any configured secret");
    hdr none[] = {{"X-Grafana-Alerting-Signature", sig}, {NULL, NULL}};
    expect_fail(&v, none, GH_BODY, 1700000100, HL_EVERIFY,
                "hmac: header X-Grafana-Alerting-Timestamp is missing");
}

static void test_hmac_mismatch(void **state)
{
    (void)state;
    gh_expect("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c"
              "8b043e18",
              "hmac: signature does not match any configured secret");
}

static void test_hmac_empty_secret_is_a_config_error(void **state)
{
    (void)state;
    const char *secrets[] = {GH_SECRET, ""};
    hl_verify_cfg v = gh_cfg();
    v.hmac.secrets = (hl_strlist){secrets, 2};
    hdr h[] = {{GH_HEADER, GH_VALUE}, {NULL, NULL}};
    expect_fail(&v, h, GH_BODY, 0, HL_ECONFIG,
                "hmac: secret 2 of verify.hmac.secrets is empty; fix the "
                "source's configuration");
}

/* --- standard_webhooks failures ----------------------------------------- */

static void test_standard_webhooks_missing_headers(void **state)
{
    (void)state;
    static const char *const names[] = {"webhook-id", "webhook-timestamp",
                                        "webhook-signature"};
    hl_verify_cfg v = sw_cfg();
    for (size_t skip = 0; skip < 3; skip++) {
        hdr all[] = {{"webhook-id", SW_ID},
                     {"webhook-timestamp", SW_TS},
                     {"webhook-signature", SW_SIG}};
        hdr h[3] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
        for (size_t i = 0, j = 0; i < 3; i++)
            if (i != skip)
                h[j++] = all[i];
        char msg[128];
        snprintf(msg, sizeof msg, "standard_webhooks: header %s is missing",
                 names[skip]);
        expect_fail(&v, h, SW_BODY, SW_NOW, HL_EVERIFY, msg);
    }
}

static void test_standard_webhooks_timestamp_tolerance(void **state)
{
    (void)state;
    sw_expect(SW_TS, SW_SIG, SW_NOW + 300, NULL);
    sw_expect(SW_TS, SW_SIG, SW_NOW - 300, NULL);
    sw_expect(SW_TS, SW_SIG, SW_NOW + 301,
              "standard_webhooks: webhook-timestamp is outside the 5m "
              "tolerance (5m1s in the past); check the sender's clock");
    sw_expect(SW_TS, SW_SIG, SW_NOW - 301,
              "standard_webhooks: webhook-timestamp is outside the 5m "
              "tolerance (5m1s in the future); check the sender's clock");
    sw_expect(SW_TS, SW_SIG, SW_NOW + 90061,
              "standard_webhooks: webhook-timestamp is outside the 5m "
              "tolerance (1d1h1m1s in the past); check the sender's clock");
}

static void test_standard_webhooks_timestamp_not_a_number(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "1614265330.5", "-1614265330",          "",
        "0x60366",      "99999999999999999999", "1e9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        sw_expect(bad[i], SW_SIG, SW_NOW,
                  "standard_webhooks: webhook-timestamp is not a number");
}

static void test_standard_webhooks_bad_signature_header(void **state)
{
    (void)state;
    sw_expect(SW_TS, "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe4=", SW_NOW,
              "standard_webhooks: webhook-signature has no \"v1,<base64>\" "
              "signature");
    sw_expect(SW_TS, SW_B64, SW_NOW,
              "standard_webhooks: webhook-signature has no \"v1,<base64>\" "
              "signature");
    sw_expect(SW_TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE v1,!!!!",
              SW_NOW,
              "standard_webhooks: no v1 signature in webhook-signature is "
              "valid base64");
    /* a bad entry does not hide a good one */
    sw_expect(SW_TS, "v1,!!!! " SW_SIG, SW_NOW, NULL);
}

static void test_standard_webhooks_too_many_signatures(void **state)
{
    (void)state;
    char sig[17 * (sizeof SW_WRONG) + 1] = "";
    for (int i = 0; i < 16; i++)
        strcat(strcat(sig, SW_WRONG), " ");
    strcat(sig, SW_SIG);
    sw_expect(SW_TS, sig, SW_NOW,
              "standard_webhooks: webhook-signature holds more than 16 v1 "
              "signatures");
    /* 16 is allowed, and the 16th is checked */
    sw_expect(SW_TS, sig + sizeof SW_WRONG, SW_NOW, NULL);
}

static void test_standard_webhooks_secret_without_prefix(void **state)
{
    (void)state;
    const char *secrets[] = {SW_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    hl_verify_cfg v = sw_cfg();
    v.standard_webhooks.secrets = (hl_strlist){secrets, 2};
    hdr h[] = {{"webhook-id", SW_ID},
               {"webhook-timestamp", SW_TS},
               {"webhook-signature", SW_SIG},
               {NULL, NULL}};
    expect_fail(&v, h, SW_BODY, SW_NOW, HL_ECONFIG,
                "standard_webhooks: secret 2 of "
                "verify.standard_webhooks.secrets is not \"whsec_\" followed "
                "by base64; fix the source's configuration");
}

/* --- slack failures ----------------------------------------------------- */

static void test_slack_missing_headers(void **state)
{
    (void)state;
    hl_verify_cfg v = slack_cfg();
    hdr no_ts[] = {{"X-Slack-Signature", "v0=" SLACK_HEX}, {NULL, NULL}};
    expect_fail(&v, no_ts, SLACK_BODY, SLACK_NOW, HL_EVERIFY,
                "slack: header X-Slack-Request-Timestamp is missing");
    hdr no_sig[] = {{"X-Slack-Request-Timestamp", SLACK_TS}, {NULL, NULL}};
    expect_fail(&v, no_sig, SLACK_BODY, SLACK_NOW, HL_EVERIFY,
                "slack: header X-Slack-Signature is missing");
}

static void test_slack_timestamp(void **state)
{
    (void)state;
    slack_expect("15314206l8", "v0=" SLACK_HEX, SLACK_NOW,
                 "slack: X-Slack-Request-Timestamp is not a number");
    slack_expect(SLACK_TS, "v0=" SLACK_HEX, SLACK_NOW + 3600,
                 "slack: X-Slack-Request-Timestamp is outside the 5m "
                 "tolerance (1h in the past); check the sender's clock");
    slack_expect(SLACK_TS, "v0=" SLACK_HEX, SLACK_NOW - 301,
                 "slack: X-Slack-Request-Timestamp is outside the 5m "
                 "tolerance (5m1s in the future); check the sender's clock");
}

static void test_slack_signature_failures(void **state)
{
    (void)state;
    slack_expect(SLACK_TS, "v1=" SLACK_HEX, SLACK_NOW,
                 "slack: X-Slack-Signature does not start with \"v0=\"");
    slack_expect(SLACK_TS, "v0=zz", SLACK_NOW,
                 "slack: signature is not valid hex");
    slack_expect(SLACK_TS, "v0=" SHA1_HEX, SLACK_NOW,
                 "slack: signature is not as long as a sha256 HMAC; check the "
                 "algorithm and the encoding");
    slack_expect(SLACK_TS, "v0=" GH_HEX, SLACK_NOW,
                 "slack: signature does not match any configured secret");
    /* the timestamp is signed: another one in tolerance does not verify */
    slack_expect("1531420619", "v0=" SLACK_HEX, SLACK_NOW,
                 "slack: signature does not match any configured secret");
}

/* --- bearer failures ---------------------------------------------------- */

static void test_bearer_failures(void **state)
{
    (void)state;
    hl_verify_cfg v = bearer_cfg();
    hdr none[] = {{"X-Token", TOKEN}, {NULL, NULL}};
    expect_fail(&v, none, "{}", 0, HL_EVERIFY,
                "bearer: Authorization header is missing");
    bearer_expect("Bearer " TOKEN "x",
                  "bearer: token does not match any configured token");
    bearer_expect("Bearer am-token-3f9c1",
                  "bearer: token does not match any configured token");
    bearer_expect("Basic " TOKEN,
                  "bearer: Authorization header is not \"Bearer <token>\"");
    bearer_expect("Bearer" TOKEN,
                  "bearer: Authorization header is not \"Bearer <token>\"");
    bearer_expect("Bearer   ",
                  "bearer: Authorization header is not \"Bearer <token>\"");
    bearer_expect(TOKEN,
                  "bearer: Authorization header is not \"Bearer <token>\"");
}

/* --- several checks ----------------------------------------------------- */

static void test_no_checks_configured_passes(void **state)
{
    (void)state;
    hl_verify_cfg v = {0};
    hdr h[] = {{NULL, NULL}};
    pass(&v, h, "anything", 0);
}

static void test_every_configured_check_must_pass(void **state)
{
    (void)state;
    hl_verify_cfg v = gh_cfg();
    v.bearer_set = true;
    v.bearer.tokens = (hl_strlist){tokens, 1};
    hdr hmac_only[] = {{GH_HEADER, GH_VALUE}, {NULL, NULL}};
    expect_fail(&v, hmac_only, GH_BODY, 0, HL_EVERIFY,
                "bearer: Authorization header is missing");
    hdr both[] = {{GH_HEADER, GH_VALUE},
                  {"Authorization", "Bearer " TOKEN},
                  {NULL, NULL}};
    pass(&v, both, GH_BODY, 0);
    hdr bearer_only[] = {{"Authorization", "Bearer " TOKEN}, {NULL, NULL}};
    expect_fail(&v, bearer_only, GH_BODY, 0, HL_EVERIFY,
                "hmac: header X-Hub-Signature-256 is missing");
}

static void test_why_is_truncated_and_terminated(void **state)
{
    (void)state;
    hl_verify_cfg v = gh_cfg();
    hdr h[] = {{NULL, NULL}};
    char why[12];
    memset(why, 'x', sizeof why);
    assert_int_equal(run(&v, h, GH_BODY, 0, why, sizeof why), HL_EVERIFY);
    assert_string_equal(why, "hmac: heade");
    assert_int_equal(run(&v, h, GH_BODY, 0, NULL, 0), HL_EVERIFY);
}

/* Every failure above already checks never_shown; this one puts each secret
 * next to the value it was expected to produce, with one byte changed. */
static void test_messages_never_contain_secrets(void **state)
{
    (void)state;
    gh_expect("sha256=" GH_HEX "00", "hmac: signature is not as long as a "
                                     "sha256 HMAC; check the algorithm and "
                                     "the encoding");
    gh_expect("sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c"
              "8b043e17",
              "hmac: signature does not match any configured secret");
    sw_expect(SW_TS, "v1,h0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", SW_NOW,
              "standard_webhooks: signature does not match any configured "
              "secret");
    bearer_expect("Bearer " TOKEN2,
                  "bearer: token does not match any configured token");
    char why[256];
    hl_verify_cfg v = gh_cfg();
    hdr h[] = {{GH_HEADER, "sha256=" SLACK_HEX}, {NULL, NULL}};
    assert_int_equal(run(&v, h, GH_BODY, 0, why, sizeof why), HL_EVERIFY);
    assert_null(strstr(why, GH_SECRET));
    assert_null(strstr(why, GH_HEX));
    assert_null(strstr(why, SLACK_HEX));
}

/* --- whsec -------------------------------------------------------------- */

static void test_whsec_decode_vector(void **state)
{
    (void)state;
    /* base64 -d of the vector's secret, checked with python3 */
    static const unsigned char want[24] = {
        0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab, 0x4f, 0x08, 0xd4,
        0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};
    unsigned char *key = malloc(24); /* exactly: ASan sees any overrun */
    size_t n = 0;
    assert_non_null(key);
    assert_int_equal(hl_whsec_decode(SW_SECRET, key, 24, &n), 0);
    assert_int_equal(n, 24);
    assert_memory_equal(key, want, 24);
    assert_int_equal(hl_whsec_decode(SW_SECRET, key, 23, &n), HL_ETOOBIG);
    free(key);
}

static void test_whsec_decode_padding(void **state)
{
    (void)state;
    unsigned char *key = malloc(2);
    size_t n = 0;
    assert_non_null(key);
    assert_int_equal(hl_whsec_decode("whsec_QQ==", key, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(key, "A", 1);
    assert_int_equal(hl_whsec_decode("whsec_QUI=", key, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(key, "AB", 2);
    free(key);
}

static void test_whsec_decode_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",       /* no prefix */
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", /* wrong case */
        "whsec_",                                 /* empty */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  /* length */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa w", /* space */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL=Sw", /* '=' inside */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL===", /* three '=' */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        NULL,
    };
    unsigned char key[64];
    size_t n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hl_whsec_decode(bad[i], key, sizeof key, &n),
                         HL_ESYNTAX);
}

static void test_whsec_decode_size_limit(void **state)
{
    (void)state;
    char secret[6 + 344 + 1] = "whsec_";
    unsigned char *key = malloc(HL_WHSEC_KEY_MAX);
    size_t n = 0;
    assert_non_null(key);
    /* 256 x 'x' is "eHh4" x 85 + "eA==", 257 is "eHh4" x 85 + "eHg=" */
    for (int i = 0; i < 85; i++)
        strcat(secret, "eHh4");
    strcat(secret, "eA==");
    assert_int_equal(hl_whsec_decode(secret, key, HL_WHSEC_KEY_MAX, &n), 0);
    assert_int_equal(n, 256);
    assert_int_equal(key[255], 'x');
    strcpy(secret + 6 + 340, "eHg=");
    assert_int_equal(hl_whsec_decode(secret, key, HL_WHSEC_KEY_MAX, &n),
                     HL_ETOOBIG);
    free(key);
}

/* --- signing ------------------------------------------------------------ */

static void test_sign_standard_webhooks_vector(void **state)
{
    (void)state;
    char out[128];
    hl_strlist s = {sw_secrets, 1};
    assert_int_equal(hl_sign_standard_webhooks(&s, SW_ID, SW_NOW, SW_BODY,
                                               strlen(SW_BODY), out,
                                               sizeof out),
                     0);
    assert_string_equal(out, SW_SIG);
}

static void test_sign_standard_webhooks_round_trip(void **state)
{
    (void)state;
    const char *secrets[] = {"whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=",
                             SW_SECRET};
    hl_strlist s = {secrets, 2};
    const char *body = "{\"type\":\"alert.firing\"}";
    char out[256];
    assert_int_equal(hl_sign_standard_webhooks(&s, "msg_42", 1700000000, body,
                                               strlen(body), out, sizeof out),
                     0);
    assert_int_equal(strncmp(out, "v1,", 3), 0);
    assert_non_null(strstr(out, " v1,"));
    for (size_t i = 0; i < 2; i++) {
        hl_verify_cfg v = sw_cfg();
        v.standard_webhooks.secrets = (hl_strlist){&secrets[i], 1};
        hdr h[] = {{"webhook-id", "msg_42"},
                   {"webhook-timestamp", "1700000000"},
                   {"webhook-signature", out},
                   {NULL, NULL}};
        pass(&v, h, body, 1700000000);
        expect_fail(&v, h, "{}", 1700000000, HL_EVERIFY,
                    "standard_webhooks: signature does not match any "
                    "configured secret");
    }
}

static void test_sign_hmac_github_vector(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA256, HL_ENC_HEX,
                                  "sha256=", GH_SECRET, GH_BODY,
                                  strlen(GH_BODY), out, sizeof out),
                     0);
    assert_string_equal(out, GH_VALUE);
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA1, HL_ENC_HEX, NULL, GH_SECRET,
                                  GH_BODY, strlen(GH_BODY), out, sizeof out),
                     0);
    assert_string_equal(out, SHA1_HEX);
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA512, HL_ENC_BASE64, "", GH_SECRET,
                                  GH_BODY, strlen(GH_BODY), out, sizeof out),
                     0);
    assert_string_equal(out, SHA512_B64);
}

static void test_sign_hmac_round_trip(void **state)
{
    (void)state;
    static const struct {
        int alg, enc;
        const char *prefix;
    } cases[] = {
        {HL_HASH_SHA1, HL_ENC_BASE64, "sha1="},
        {HL_HASH_SHA256, HL_ENC_BASE64, NULL},
        {HL_HASH_SHA512, HL_ENC_HEX, "sha512="},
    };
    const char *body = "{\"id\":7}";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        assert_int_equal(hl_sign_hmac(cases[i].alg, cases[i].enc,
                                      cases[i].prefix, GH_SECRET, body,
                                      strlen(body), out, sizeof out),
                         0);
        hl_verify_cfg v = hmac_cfg(cases[i].alg, cases[i].prefix, cases[i].enc);
        hdr h[] = {{GH_HEADER, out}, {NULL, NULL}};
        pass(&v, h, body, 0);
        expect_fail(&v, h, GH_BODY, 0, HL_EVERIFY,
                    "hmac: signature does not match any configured secret");
    }
}

static void test_sign_errors(void **state)
{
    (void)state;
    char out[128];
    /* "sha256=" + 64 hex digits + NUL needs 72 bytes */
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA256, HL_ENC_HEX, "sha256=",
                                  GH_SECRET, GH_BODY, strlen(GH_BODY), out, 71),
                     HL_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA256, HL_ENC_HEX, "sha256=",
                                  GH_SECRET, GH_BODY, strlen(GH_BODY), out, 72),
                     0);
    assert_int_equal(
        hl_sign_hmac(7, HL_ENC_HEX, NULL, GH_SECRET, "", 0, out, sizeof out),
        HL_ERANGE);
    assert_int_equal(
        hl_sign_hmac(HL_HASH_SHA1, 9, NULL, GH_SECRET, "", 0, out, sizeof out),
        HL_ERANGE);
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA1, HL_ENC_HEX, NULL, "", "", 0,
                                  out, sizeof out),
                     HL_ECONFIG);

    hl_strlist s = {sw_secrets, 1};
    /* "v1," + 44 base64 + NUL needs 48 bytes */
    assert_int_equal(hl_sign_standard_webhooks(&s, SW_ID, SW_NOW, SW_BODY,
                                               strlen(SW_BODY), out, 47),
                     HL_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(hl_sign_standard_webhooks(&s, SW_ID, SW_NOW, SW_BODY,
                                               strlen(SW_BODY), out, 48),
                     0);
    const char *bad[] = {SW_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    hl_strlist b = {bad, 2};
    assert_int_equal(hl_sign_standard_webhooks(&b, SW_ID, SW_NOW, SW_BODY,
                                               strlen(SW_BODY), out,
                                               sizeof out),
                     HL_ESYNTAX);
    assert_string_equal(out, "");
    hl_strlist empty = {NULL, 0};
    assert_int_equal(hl_sign_standard_webhooks(&empty, SW_ID, SW_NOW, SW_BODY,
                                               strlen(SW_BODY), out,
                                               sizeof out),
                     HL_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github_vector_passes),
        cmocka_unit_test(test_github_vector_uppercase_hex_and_whitespace_pass),
        cmocka_unit_test(test_github_vector_other_body_fails),
        cmocka_unit_test(test_standard_webhooks_vector_passes),
        cmocka_unit_test(test_standard_webhooks_vector_wrong_signature_fails),
        cmocka_unit_test(test_hmac_sha1_hex),
        cmocka_unit_test(test_hmac_sha512_base64_without_prefix),
        cmocka_unit_test(test_hmac_rotation_second_secret_matches),
        cmocka_unit_test(test_standard_webhooks_rotation_second_secret_matches),
        cmocka_unit_test(test_standard_webhooks_only_last_of_several_valid),
        cmocka_unit_test(test_slack_passes_and_rotates),
        cmocka_unit_test(test_bearer_passes_any_token_any_scheme_case),
        cmocka_unit_test(test_hmac_missing_header),
        cmocka_unit_test(test_hmac_wrong_prefix),
        cmocka_unit_test(test_hmac_bad_hex),
        cmocka_unit_test(test_hmac_bad_base64),
        cmocka_unit_test(test_hmac_wrong_length),
        cmocka_unit_test(test_hmac_mismatch),
        cmocka_unit_test(test_hmac_several_signatures),
        cmocka_unit_test(test_hmac_with_timestamp_header),
        cmocka_unit_test(test_hmac_empty_secret_is_a_config_error),
        cmocka_unit_test(test_standard_webhooks_missing_headers),
        cmocka_unit_test(test_standard_webhooks_timestamp_tolerance),
        cmocka_unit_test(test_standard_webhooks_timestamp_not_a_number),
        cmocka_unit_test(test_standard_webhooks_bad_signature_header),
        cmocka_unit_test(test_standard_webhooks_too_many_signatures),
        cmocka_unit_test(test_standard_webhooks_secret_without_prefix),
        cmocka_unit_test(test_slack_missing_headers),
        cmocka_unit_test(test_slack_timestamp),
        cmocka_unit_test(test_slack_signature_failures),
        cmocka_unit_test(test_bearer_failures),
        cmocka_unit_test(test_no_checks_configured_passes),
        cmocka_unit_test(test_every_configured_check_must_pass),
        cmocka_unit_test(test_why_is_truncated_and_terminated),
        cmocka_unit_test(test_messages_never_contain_secrets),
        cmocka_unit_test(test_whsec_decode_vector),
        cmocka_unit_test(test_whsec_decode_padding),
        cmocka_unit_test(test_whsec_decode_rejects),
        cmocka_unit_test(test_whsec_decode_size_limit),
        cmocka_unit_test(test_sign_standard_webhooks_vector),
        cmocka_unit_test(test_sign_standard_webhooks_round_trip),
        cmocka_unit_test(test_sign_hmac_github_vector),
        cmocka_unit_test(test_sign_hmac_round_trip),
        cmocka_unit_test(test_sign_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
