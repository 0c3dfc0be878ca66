/* test_redact.c - redaction: the secrets and pii packs on realistic values and
 * near-misses, field rules, keyed hashes, free text and pack errors. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "diag.h"
#include "err.h"
#include "redact.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PACKS "policies/redact"
#define M "[REDACTED]"

/* One redactor with both packs for the pattern tests (group setup). */
static hl_redactor *g_packs;
/* What a single test built, freed by the teardown even when it fails. */
static hl_redactor *g_r, *g_r2;
static hl_diags g_diags;
static json_t *g_doc;
static char *g_text;
static char g_dir[64];

static int group_setup(void **state)
{
    (void)state;
    hl_redact_rule both[] = {{HL_REDACT_PACK, "secrets", 0, NULL},
                             {HL_REDACT_PACK, "pii", 0, NULL}};
    hl_diags d = {0};
    int rc = hl_redactor_create(both, 2, PACKS, NULL, 0, &d, &g_packs);
    hl_diags_print(&d, stderr);
    hl_diags_free(&d);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    hl_redactor_destroy(g_packs);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hl_redactor_destroy(g_r);
    hl_redactor_destroy(g_r2);
    g_r = g_r2 = NULL;
    hl_diags_free(&g_diags);
    json_decref(g_doc);
    g_doc = NULL;
    free(g_text);
    g_text = NULL;
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        assert_int_equal(system(cmd), 0);
        g_dir[0] = 0;
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static void print_diags(const hl_diags *d)
{
    char buf[2048];
    for (size_t i = 0; i < d->n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        print_message("  %s\n", buf);
    }
}

#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void assert_diags(const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    if (g_diags.n != n) {
        print_message("expected %zu messages, got:\n", n);
        print_diags(&g_diags);
    }
    assert_int_equal(g_diags.n, n);
    char buf[2048];
    for (size_t i = 0; i < n; i++) {
        hl_diag_format(&g_diags.v[i], buf, sizeof buf);
        assert_string_equal(buf, want[i]);
    }
}

/* Build g_r from rules; the build must succeed without messages. */
static hl_redactor *build(const hl_redact_rule *rules, size_t n,
                          const char *key)
{
    hl_redactor *r = NULL;
    int rc = hl_redactor_create(rules, n, PACKS, (const unsigned char *)key,
                                key ? strlen(key) : 0, &g_diags, &r);
    if (rc || g_diags.n)
        print_diags(&g_diags);
    assert_int_equal(rc, 0);
    assert_int_equal(g_diags.n, 0);
    return r;
}

/* Redact text with r; the result must be want. */
static void text_is(const hl_redactor *r, const char *in, const char *want)
{
    size_t n = 0;
    free(g_text);
    g_text = hl_redact_text(r, in, strlen(in), &n);
    assert_non_null(g_text);
    assert_string_equal(g_text, want);
    assert_int_equal(n, strlen(want));
}

typedef struct {
    const char *in, *want;
} pair;

/* Each text redacted with both packs ends as its pair says. */
static void texts_are(const pair *pairs)
{
    for (size_t i = 0; pairs[i].in; i++)
        text_is(g_packs, pairs[i].in, pairs[i].want);
}

/* Each text is left exactly as it is by both packs. */
static void texts_kept(const char *const *texts)
{
    for (size_t i = 0; texts[i]; i++)
        text_is(g_packs, texts[i], texts[i]);
}

#define PAIRS(...) ((const pair[]){__VA_ARGS__, {NULL, NULL}})
#define TEXTS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Parse in, redact with r, compare the compact JSON and the count. */
static void json_is(const hl_redactor *r, const char *in, const char *want,
                    int want_count)
{
    json_error_t err;
    json_decref(g_doc);
    g_doc = json_loads(in, JSON_DECODE_ANY, &err);
    if (!g_doc)
        print_message("bad test JSON: %s\n", err.text);
    assert_non_null(g_doc);
    int count = hl_redact_json(r, g_doc);
    free(g_text);
    g_text = json_dumps(g_doc, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(g_text);
    assert_string_equal(g_text, want);
    assert_int_equal(count, want_count);
    /* Redacting the result again changes nothing. */
    assert_int_equal(hl_redact_json(r, g_doc), 0);
    char *again = json_dumps(g_doc, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(again);
    assert_string_equal(again, want);
    free(again);
}

/* ---- secrets pack ------------------------------------------------------- */

static void test_aws_access_key_id(void **state)
{
    (void)state;
    texts_are(PAIRS({"key AKIAIOSFODNN7EXAMPLE here", "key " M " here"},
                    {"export AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE",
                     "export AWS_ACCESS_KEY_ID=" M},
                    {"{\"AccessKeyId\":\"ASIAY34FZKBOKMUTVV7A\"}",
                     "{\"AccessKeyId\":\"" M "\"}"}));
    texts_kept(TEXTS("AKIAIOSFODNN7EXAMPL",   /* 19 characters */
                     "AKIAIOSFODNN7EXAMPLE1", /* 21 */
                     "akiaiosfodnn7example", "XAKIAIOSFODNN7EXAMPLE",
                     "AKIA is the prefix of access key ids"));
}

static void test_aws_secret_access_key(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"[default]\naws_secret_access_key = "
         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nregion = eu-west-1",
         "[default]\naws_secret_access_key = " M "\nregion = eu-west-1"},
        {"AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
         "AWS_SECRET_ACCESS_KEY=" M},
        {"{\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}",
         "{\"SecretAccessKey\": \"" M "\"}"},
        {"secretAccessKey: je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
         "secretAccessKey: " M}));
    texts_kept(TEXTS(
        /* without a name next to it a 40-character string is not a key */
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key=tooshort",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX"));
}

static void test_github_token(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"GITHUB_TOKEN=ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
         "GITHUB_TOKEN=" M},
        {"token gho_KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR", "token " M},
        {"ghs_IBXuDL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7 and "
         "ghu_FAc9QeWJKY40uvSwMFLZDe1f8rESQedUStPK",
         M " and " M},
        {"refresh: ghr_R0CsTy4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4.",
         "refresh: " M "."},
        {"pat "
         "github_pat_11i0B3JrTAwR4y9ojfljoQ_oaF1LlqsajAIxNKu8iS2G8NPRVdD53X83"
         "RZJzzzzgEOzdmenCkhvMdgaKjI end",
         "pat " M " end"}));
    texts_kept(TEXTS("ghp_g8xNbe3nNyjOq9wMxEhh", /* too short */
                     "ghx_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
                     "github_pat_short", "see ghp_ tokens in the docs"));
}

static void test_slack_token(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy", M},
        {"SLACK_USER_TOKEN=xoxp-4797289847-4797289861-4804428224-"
         "feff9243a8f506b40928b5b7a767c76f",
         "SLACK_USER_TOKEN=" M},
        {"app xapp-1-A0WBBR4QMW2-5513137353799-0fb23c6f5da2cec255404e4fb440034d"
         "6608697a8d41bed440e50454f31af317 ok",
         "app " M " ok"},
        {"xoxa-2-340187801759-GMGmSrCGIZEG8pSH4487q7J5", M},
        {"{\"refresh\":\"xoxr-372616751361-nQtYh5Xj8TPQxjq4i9DoV8gz\"}",
         "{\"refresh\":\"" M "\"}"}));
    texts_kept(TEXTS("xoxb-", "xoxb-your-token", "xoxq-1234-abcdefghijkl",
                     "xoxb-123-short"));
}

#define JWT                                                                    \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI" \
    "6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y" \
    "JV_adQssw5c"

static void test_jwt(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {JWT, M}, {"id_token=" JWT "&state=xyz", "id_token=" M "&state=xyz"},
        {/* alg none: an empty signature */
         "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0In0.", M},
        {"Authorization: Bearer " JWT, "Authorization: Bearer " M}));
    texts_kept(TEXTS("eyJhbGciOiJIUzI1NiJ9", /* a header alone */
                     "abc.def.ghi", "eyJ.eyJ.x"));
}

#define PEM_BODY                                                               \
    "\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"     \
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n"       \
    "o3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2k\n"       \
    "TQIhAKMSvzIBnni7ot/OSie2TmJLY4SwTQAevXysE2RbFDYdAiEBCUEaRQnMnbp7\n"

static void test_private_key_block(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"deploy failed, key was:\n-----BEGIN RSA PRIVATE KEY-----" PEM_BODY
         "-----END RSA PRIVATE KEY-----\nplease rotate it",
         "deploy failed, key was:\n-----BEGIN RSA PRIVATE KEY-----" M
         "-----END RSA PRIVATE KEY-----\nplease rotate it"},
        {"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUA"
         "\n-----END OPENSSH PRIVATE KEY-----",
         "-----BEGIN OPENSSH PRIVATE KEY-----" M
         "-----END OPENSSH PRIVATE KEY-----"},
        {"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTAp\n"
         "-----END ENCRYPTED PRIVATE KEY-----",
         "-----BEGIN ENCRYPTED PRIVATE KEY-----" M
         "-----END ENCRYPTED PRIVATE KEY-----"},
        {/* cut off before its END line: everything after BEGIN goes */
         "excerpt: -----BEGIN EC PRIVATE "
         "KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSx"
         "KtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49",
         "excerpt: -----BEGIN EC PRIVATE KEY-----" M}));
    texts_kept(TEXTS(
        "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKj34Gkx"
        "\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAV2gAwIBAgIJAO\n"
        "-----END CERTIFICATE-----",
        "a PRIVATE KEY must never be logged"));
}

static void test_bearer_token(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"Authorization: Bearer mF_9.B5f-4.1JqM", "Authorization: Bearer " M},
        {"curl -H 'authorization: bearer 2YotnFZFEjr1zCsicMWpAA'",
         "curl -H 'authorization: bearer " M "'"},
        {"BEARER dGhpc2lzYWxvbmdvcGFxdWV0b2tlbg==", "BEARER " M}));
    texts_kept(TEXTS("send a bearer token", "use bearer authentication.",
                     "WWW-Authenticate: Bearer realm=\"example\"",
                     "Bearer abc12"));
}

static void test_password_pair(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"login with password=hunter2&user=bob",
         "login with password=" M "&user=bob"},
        {"DB_PASSWORD=s3cr3t!", "DB_PASSWORD=" M},
        {"passwd: Tr0ub4dor!3", "passwd: " M},
        {"pwd=abc123; next", "pwd=" M "; next"},
        {"userPassword: 'correct horse battery'", "userPassword: '" M "'"},
        {"{\"password\": \"my secret pass\", \"user\": \"bob\"}",
         "{\"password\": \"" M "\", \"user\": \"bob\"}"},
        {"body {\\\"password\\\":\\\"hunter2\\\"}",
         "body {\\\"password\\\":\\\"" M "\\\"}"},
        {"Passphrase = 'two words'", "Passphrase = '" M "'"}));
    texts_kept(TEXTS("the word password", "password reset link sent",
                     "password=", "passwords: 3", "compassword=x",
                     "password_changed_at=2024-01-15"));
}

static void test_basic_auth(void **state)
{
    (void)state;
    texts_are(
        PAIRS({"Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic " M},
              {"{\"Proxy-Authorization\":\"basic "
               "QWxhZGRpbjpvcGVuIHNlc2FtZQ==\"}",
               "{\"Proxy-Authorization\":\"basic " M "\"}"}));
    texts_kept(TEXTS("basic configuration", "Basic dXNlcjpwYXNz",
                     "WWW-Authenticate: Basic realm=\"api\""));
}

/* The secrets pack alone: with pii too the host would go as an e-mail. */
static void test_url_password(void **state)
{
    (void)state;
    hl_redact_rule secrets[] = {{HL_REDACT_PACK, "secrets", 0, NULL}};
    g_r = build(secrets, 1, NULL);
    text_is(g_r, "DATABASE_URL=postgres://app:s3cr%40t@db.internal:5432/app",
            "DATABASE_URL=postgres://app:" M "@db.internal:5432/app");
    text_is(g_r, "clone https://bob:ghp-less-token@git.example.com/x.git",
            "clone https://bob:" M "@git.example.com/x.git");
    text_is(g_r,
            "https://hooks.slack.com/services/T00000000/B00000000/"
            "XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/" M);
    const char *kept[] = {"https://host:8080/path?a=b@c", "https://user@host/",
                          "see "
                          "https://hooks.slack.com/services for the docs",
                          NULL};
    for (size_t i = 0; kept[i]; i++)
        text_is(g_r, kept[i], kept[i]);
}

/* ---- pii pack ----------------------------------------------------------- */

static void test_email(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"contact jane.doe@example.com.", "contact " M "."},
        {"ops+alerts@mail.example.co.uk", M},
        {"<a_b-c@sub-domain.example.org>", "<" M ">"},
        {"From: \"Ann\" <ANN.LEE@EXAMPLE.COM>", "From: \"Ann\" <" M ">"}));
    texts_kept(TEXTS("user@localhost", "ping @channel", "name@example",
                     "not-an-email@", "pkg@1.2.3"));
}

static void test_phone(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"call +14155552671", "call " M},
        {"+44 20 7946 0958 (office)", M " (office)"},
        {"tel: +1 (415) 555-2671", "tel: " M}, {"+33 6 12 34 56 78", M},
        {"(415) 555-2671 or 415.555.2671 or 415-555-2671", M " or " M " or " M},
        {"1-800-555-0199", M},
        {"UK 020 7946 0958, DE 030 12345678, FR 06 12 34 56 78",
         "UK " M ", DE " M ", FR " M},
        {"0171/1234567", M}));
    texts_kept(TEXTS("2024-01-15", "15.01.2024", "01/15/2024 12:30",
                     "2024-01-15T12:30:45+01:00", "12:30:45",
                     "epoch 1705312345", "order 12345678", "version 1.2.3.4.5",
                     "UTC+10", "+0100", "x 4155552671", "415-555.2671",
                     "2024-01-15 08:30:00"));
}

static void test_card_number(void **state)
{
    (void)state;
    texts_are(
        PAIRS({"card 4111 1111 1111 1111 exp 12/25", "card " M " exp 12/25"},
              {"5500-0000-0000-0004", M},
              {"amex 378282246310005, discover 6011111111111117",
               "amex " M ", discover " M},
              {"{\"pan\":\"4012888888881881\"}", "{\"pan\":\"" M "\"}"},
              {"4111 1111 1111 1111 2025", M " 2025"}));
    texts_kept(TEXTS("4111 1111 1111 1112", /* fails Luhn */
                     "5500-0000-0000-0005", "order 12345678",
                     "ts 1705312345678901", /* epoch microseconds */
                     "20240115123045", "id 0.4111111111111111",
                     "deadbeef4111111111111111"));
}

static void test_ipv4(void **state)
{
    (void)state;
    texts_are(PAIRS(
        {"from 10.0.0.1:8080", "from " M ":8080"},
        {"192.168.1.254, 255.255.255.255 and 8.8.8.8.", M ", " M " and " M "."},
        {"cidr 172.16.0.0/12", "cidr " M "/12"}));
    texts_kept(TEXTS("999.1.1.1", "version 1.2.3", "version 1.2.3.4.5",
                     "10.0.0.0.1", "256.1.1.1", "01.02.03.04", "v1.2.3.4",
                     "2024.01.15"));
}

/* The mask is matched by no pattern, so a second pass finds nothing. */
static void test_masks_are_stable(void **state)
{
    (void)state;
    const char *in = "password=" M " Bearer " M " " M "@" M " " M;
    text_is(g_packs, in, in);
    json_is(g_packs, "[\"" M "\",{\"password\":\"" M "\"}]",
            "[\"" M "\",{\"password\":\"" M "\"}]", 0);
}

/* ---- field rules -------------------------------------------------------- */

static void test_field_pointer(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/data/labels/token", HL_REDACT_MASK, NULL},
        {HL_REDACT_FIELD, "/items/1", HL_REDACT_MASK, "***"},
        {HL_REDACT_FIELD, "/a~1b/c~0d", HL_REDACT_MASK, NULL},
        {HL_REDACT_FIELD, "/data/obj", HL_REDACT_MASK, NULL},
    };
    g_r = build(rules, 4, NULL);
    json_is(g_r,
            "{\"data\":{\"labels\":{\"token\":\"t0k\",\"env\":\"prod\"},"
            "\"token\":\"kept\",\"obj\":{\"x\":[1,2]}},"
            "\"items\":[\"a\",\"b\",\"c\"],\"a/b\":{\"c~d\":1,\"cd\":2}}",
            "{\"data\":{\"labels\":{\"token\":\"" M "\",\"env\":\"prod\"},"
            "\"token\":\"kept\",\"obj\":\"" M "\"},"
            "\"items\":[\"a\",\"***\",\"c\"],\"a/b\":{\"c~d\":\"" M
            "\",\"cd\":2}}",
            4);
}

static void test_field_glob(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/data/labels/*", HL_REDACT_MASK, NULL},
        {HL_REDACT_FIELD, "**/password", HL_REDACT_MASK, NULL},
        {HL_REDACT_FIELD, "/users/*/*_token", HL_REDACT_MASK, NULL},
        {HL_REDACT_FIELD, "/deep/**/k?y", HL_REDACT_MASK, NULL},
    };
    g_r = build(rules, 4, NULL);
    json_is(g_r,
            "{\"data\":{\"labels\":{\"a\":\"1\",\"b\":\"2\"},\"title\":\"t\"},"
            "\"password\":\"p0\",\"x\":[{\"y\":{\"password\":\"p1\"}}],"
            "\"users\":[{\"api_token\":\"u0\",\"name\":\"ann\"},"
            "{\"refresh_token\":\"u1\"}],"
            "\"deep\":{\"key\":1,\"a\":{\"b\":{\"kay\":2,\"kkey\":3}}}}",
            "{\"data\":{\"labels\":{\"a\":\"" M "\",\"b\":\"" M
            "\"},\"title\":\"t\"},"
            "\"password\":\"" M "\",\"x\":[{\"y\":{\"password\":\"" M "\"}}],"
            "\"users\":[{\"api_token\":\"" M "\",\"name\":\"ann\"},"
            "{\"refresh_token\":\"" M "\"}],"
            "\"deep\":{\"key\":\"" M "\",\"a\":{\"b\":{\"kay\":\"" M
            "\",\"kkey\":3}}}}",
            8);
}

/* A trailing ** names everything below, not the value itself. */
static void test_field_trailing_deep(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/data/**", HL_REDACT_MASK, NULL},
    };
    g_r = build(rules, 1, NULL);
    json_is(g_r, "{\"data\":{\"a\":{\"b\":1},\"c\":[1]},\"other\":2}",
            "{\"data\":{\"a\":\"" M "\",\"c\":\"" M "\"},\"other\":2}", 2);
}

static void test_field_drop_mask_hash(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "**/password", HL_REDACT_DROP, NULL},
        {HL_REDACT_FIELD, "/user/email", HL_REDACT_HASH, NULL},
        {HL_REDACT_FIELD, "/user/ssn", HL_REDACT_MASK, "[SSN]"},
        {HL_REDACT_FIELD, "/meta", HL_REDACT_HASH, NULL},
        {HL_REDACT_FIELD, "/n", HL_REDACT_HASH, NULL},
    };
    g_r = build(rules, 5, "k1");
    json_is(
        g_r,
        "{\"user\":{\"email\":\"alice@example.com\",\"ssn\":\"123-45-6789\","
        "\"password\":\"hunter2\"},\"meta\":{\"b\":[2],\"a\":1},\"n\":42,"
        "\"password\":[1]}",
        "{\"user\":{\"email\":\"hmac256:e97a3c597641b2b9\","
        "\"ssn\":\"[SSN]\"},\"meta\":\"hmac256:c9199030ce4bb952\","
        "\"n\":\"hmac256:40c5da01ecc49488\"}",
        6);
}

/* Array elements are named by their index in the document as it came:
 * dropping one does not shift the names of the others. */
static void test_field_array_drop(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/tags/1", HL_REDACT_DROP, NULL},
        {HL_REDACT_FIELD, "/tags/2", HL_REDACT_HASH, NULL},
        {HL_REDACT_FIELD, "/rows/*/pin", HL_REDACT_DROP, NULL},
    };
    g_r = build(rules, 3, "k1");
    g_doc = json_loads("{\"tags\":[\"a\",\"b\",\"hunter2\",\"d\"],"
                       "\"rows\":[{\"pin\":1,\"n\":1},{\"pin\":2}]}",
                       0, NULL);
    assert_non_null(g_doc);
    assert_int_equal(hl_redact_json(g_r, g_doc), 4);
    g_text = json_dumps(g_doc, JSON_COMPACT);
    assert_string_equal(g_text, "{\"tags\":[\"a\",\"hmac256:1b0ba06e566b2d69\","
                                "\"d\"],\"rows\":[{\"n\":1},{}]}");
}

/* The same value gives the same token under one key, another under another
 * key; with no key, one random key serves the whole process. */
static void test_hash_keyed(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/s", HL_REDACT_HASH, NULL},
        {HL_REDACT_PATTERN, "pw=(?<secret>\\w+)", HL_REDACT_HASH, NULL},
    };
    g_r = build(rules, 2, "k1");
    g_r2 = build(rules, 2, "k2");
    json_is(g_r, "{\"s\":\"hunter2\",\"t\":\"pw=hunter2\"}",
            "{\"s\":\"hmac256:1b0ba06e566b2d69\","
            "\"t\":\"pw=hmac256:1b0ba06e566b2d69\"}",
            2);
    json_is(g_r2, "{\"s\":\"hunter2\"}", "{\"s\":\"hmac256:178e26e6a989fbc2\"}",
            1);
    text_is(g_r, "pw=hunter2 pw=hunter2",
            "pw=hmac256:1b0ba06e566b2d69 pw=hmac256:1b0ba06e566b2d69");

    hl_redactor_destroy(g_r);
    hl_redactor_destroy(g_r2);
    g_r = build(rules, 2, NULL);
    g_r2 = build(rules, 2, NULL);
    char *a = hl_redact_text(g_r, "pw=hunter2", 10, NULL);
    char *b = hl_redact_text(g_r2, "pw=hunter2", 10, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(strlen(a), strlen("pw=hmac256:") + 16);
    assert_string_equal(a, b);
    assert_string_not_equal(a, "pw=hmac256:1b0ba06e566b2d69");
    free(a);
    free(b);
}

/* Field rules run first; a value they leave is still scanned by patterns. */
static void test_fields_then_patterns(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/a", HL_REDACT_HASH, NULL},
        {HL_REDACT_PACK, "pii", 0, NULL},
        {HL_REDACT_PATTERN, "(?i)ticket-\\d+", HL_REDACT_MASK, "[TICKET]"},
    };
    g_r = build(rules, 3, "k1");
    json_is(g_r,
            "{\"a\":\"alice@example.com\",\"b\":\"mail alice@example.com "
            "about TICKET-42\",\"alice@example.com\":true}",
            "{\"a\":\"hmac256:e97a3c597641b2b9\",\"b\":\"mail " M
            " about [TICKET]\",\"alice@example.com\":true}",
            3);
    /* A document that is one string is redacted in place. */
    json_is(g_r, "\"to bob@example.org\"", "\"to " M "\"", 1);
}

/* ---- documents and text ------------------------------------------------- */

#define EVENT_IN                                                               \
    "{\"specversion\":\"1.0\",\"id\":\"01HM5V7Q2X8K3J9R4T6W0YBCDE\","          \
    "\"source\":\"/v1/hooks/ci\",\"type\":\"build.failed\","                   \
    "\"time\":\"2024-01-15T12:30:45Z\",\"tenant\":\"acme\","                   \
    "\"severity\":\"error\",\"dedupkey\":\"ci-4711\",\"data\":{"               \
    "\"title\":\"Build 4711 failed\",\"text\":\"push with "                    \
    "GITHUB_TOKEN=ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d rejected for "      \
    "jane.doe@example.com from 10.1.2.3\",\"status\":\"failed\","              \
    "\"url\":\"https://ci.example/builds/4711\",\"labels\":{"                  \
    "\"token\":\"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy\","     \
    "\"env\":\"prod\",\"version\":\"1.2.3.4\"},\"raw\":{\"build\":4711}}}"

#define EVENT_HEAD                                                             \
    "{\"specversion\":\"1.0\",\"id\":\"01HM5V7Q2X8K3J9R4T6W0YBCDE\","          \
    "\"source\":\"/v1/hooks/ci\",\"type\":\"build.failed\","                   \
    "\"time\":\"2024-01-15T12:30:45Z\",\"tenant\":\"acme\","                   \
    "\"severity\":\"error\",\"dedupkey\":\"ci-4711\",\"data\":{"               \
    "\"title\":\"Build 4711 failed\",\"text\":\"push with "

#define EVENT_TAIL                                                             \
    "\",\"status\":\"failed\",\"url\":\"https://ci.example/builds/4711\","     \
    "\"labels\":{\"token\":\"" M "\",\"env\":\"prod\","                        \
    "\"version\":\"1.2.3.4\"},\"raw\":{\"build\":4711}}}"

static void test_canonical_event(void **state)
{
    (void)state;
    hl_redact_rule secrets[] = {{HL_REDACT_PACK, "secrets", 0, NULL}};
    g_r = build(secrets, 1, NULL);
    json_is(g_r, EVENT_IN,
            EVENT_HEAD "GITHUB_TOKEN=" M " rejected for jane.doe@example.com "
                       "from 10.1.2.3" EVENT_TAIL,
            2);
    /* Both packs: the address and the e-mail go too; a four-part version
     * is an IPv4 address to the pattern and goes as well. */
    json_is(g_packs, EVENT_IN,
            EVENT_HEAD "GITHUB_TOKEN=" M " rejected for " M " from " M
                       "\",\"status\":\"failed\",\"url\":\"https://"
                       "ci.example/builds/4711\",\"labels\":{\"token\":\"" M
                       "\",\"env\":\"prod\",\"version\":\"" M
                       "\"},\"raw\":{\"build\":4711}}}",
            5);
}

static void test_secret_fields_in_pack(void **state)
{
    (void)state;
    json_is(g_packs,
            "{\"user\":{\"name\":\"bob\",\"password\":{\"old\":\"a\"},"
            "\"newPassword\":\"b\",\"DB_PASSWORD\":\"c\","
            "\"password_changed_at\":\"2024-01-15\"},"
            "\"oauth\":{\"access_token\":\"opaque\",\"expires_in\":3600,"
            "\"client_secret\":\"s\"}}",
            "{\"user\":{\"name\":\"bob\",\"password\":\"" M "\","
            "\"newPassword\":\"" M "\",\"DB_PASSWORD\":\"" M "\","
            "\"password_changed_at\":\"2024-01-15\"},"
            "\"oauth\":{\"access_token\":\"" M "\",\"expires_in\":3600,"
            "\"client_secret\":\"" M "\"}}",
            5);
}

static void test_redact_text(void **state)
{
    (void)state;
    text_is(g_packs,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
            "realm=\"api\"\r\n\r\n{\"error\":\"token "
            "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d revoked\","
            "\"contact\":\"sec@example.com\"}",
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
            "realm=\"api\"\r\n\r\n{\"error\":\"token " M " revoked\","
            "\"contact\":\"" M "\"}");
    text_is(g_packs, "", "");
    text_is(g_packs, "nothing to see", "nothing to see");

    /* Bytes that are not UTF-8 and NULs are kept around a match. */
    static const char in[] = "\xff\xfe pw: password=hunter2 \x00 \xc3(";
    static const char want[] = "\xff\xfe pw: password=" M " \x00 \xc3(";
    size_t n = 0;
    free(g_text);
    g_text = hl_redact_text(g_packs, in, sizeof in - 1, &n);
    assert_non_null(g_text);
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(g_text, want, n);
    assert_int_equal(g_text[n], 0);
}

/* Object keys may hold NUL bytes (jansson 2.14): each key keeps its value,
 * and a key is matched with all its bytes. */
static void test_keys_with_nul(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "/pass", HL_REDACT_DROP, NULL},
        {HL_REDACT_PACK, "secrets", 0, NULL},
    };
    g_r = build(rules, 2, NULL);
    g_doc = json_object();
    assert_non_null(g_doc);
    assert_int_equal(json_object_setn_new(g_doc, "pass\0word", 9,
                                          json_string("pwd=hunter2")),
                     0);
    assert_int_equal(json_object_set_new(g_doc, "pass", json_string("x")), 0);
    assert_int_equal(hl_redact_json(g_r, g_doc), 2);
    assert_int_equal(json_object_size(g_doc), 1);
    assert_string_equal(
        json_string_value(json_object_getn(g_doc, "pass\0word", 9)), "pwd=" M);
}

typedef struct {
    pthread_t t;
    int failures;
} worker;

static void *redact_many(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        char in[128], want[128];
        snprintf(in, sizeof in, "run %d: password=p%d to ops%d@example.com", i,
                 i, i);
        snprintf(want, sizeof want, "run %d: password=" M " to " M, i);
        char *out = hl_redact_text(g_packs, in, strlen(in), NULL);
        w->failures += !out || strcmp(out, want) != 0;
        free(out);
    }
    return NULL;
}

/* One redactor serves several threads at once. */
static void test_threads(void **state)
{
    (void)state;
    worker w[4] = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&w[i].t, NULL, redact_many, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(w[i].t, NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
}

/* A policy rule with a named group masks only the group. */
static void test_pattern_secret_group(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_PATTERN, "(?i)api[_-]?key=(?<secret>[a-z0-9]+)",
         HL_REDACT_MASK, "***"},
        {HL_REDACT_PATTERN,
         "(?J)ssn (?:(?<secret>\\d{9})|(?<secret>\\d{3}-\\d{2}-\\d{4}))",
         HL_REDACT_MASK, NULL},
    };
    g_r = build(rules, 2, NULL);
    text_is(g_r, "GET /x?api_key=abc123&y=1 ssn 123456789 ssn 123-45-6789",
            "GET /x?api_key=***&y=1 ssn " M " ssn " M);
}

/* ---- errors ------------------------------------------------------------- */

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/test_redact.XXXXXX");
    assert_non_null(mkdtemp(g_dir));
}

static void write_pack(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.yaml", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Build from rules with packs in dir; expect HL_ECONFIG and no redactor. */
static void build_fails(const hl_redact_rule *rules, size_t n, const char *dir)
{
    int rc = hl_redactor_create(rules, n, dir, NULL, 0, &g_diags, &g_r);
    assert_int_equal(rc, HL_ECONFIG);
    assert_null(g_r);
}

static void test_unknown_pack(void **state)
{
    (void)state;
    make_dir();
    write_pack("mine", "rules:\n  - name: x\n    pattern: 'x'\n");
    write_pack("alerts", "rules: []\n");
    hl_redact_rule rules[] = {{HL_REDACT_PACK, "mine", 0, NULL},
                              {HL_REDACT_PACK, "creds", 0, NULL},
                              {HL_REDACT_PACK, "../etc/passwd", 0, NULL}};
    build_fails(rules, 3, g_dir);
    char want[256];
    snprintf(want, sizeof want,
             "error: redact[1]: unknown redaction pack 'creds': there is no "
             "creds.yaml in %s (packs there: alerts, mine)",
             g_dir);
    assert_diags(MSGS(want, "error: redact[2]: '../etc/passwd' is not a pack "
                            "name: use letters, digits, '-' and '_', such "
                            "as secrets or pii"));
    hl_diags_free(&g_diags);
    build_fails(rules + 1, 1, "no/such/dir");
    assert_diags(MSGS("error: redact[0]: unknown redaction pack 'creds': "
                      "cannot read the packs folder no/such/dir: No such "
                      "file or directory"));
}

static void test_pack_bad_regex(void **state)
{
    (void)state;
    make_dir();
    write_pack("bad", "# a pack with a broken pattern\n"
                      "rules:\n"
                      "  - name: fine\n"
                      "    pattern: 'ok'\n"
                      "  - name: broken\n"
                      "    pattern: 'token=(?<secret>[a-z]+'\n"
                      "  - name: range\n"
                      "    pattern: \"card [9-0]+\"\n");
    hl_redact_rule rules[] = {{HL_REDACT_PACK, "bad", 0, NULL}};
    build_fails(rules, 1, g_dir);
    char want1[256], want2[256];
    snprintf(want1, sizeof want1,
             "%s/bad.yaml:6:14: error: rules[1].pattern: invalid regular "
             "expression at offset 22: missing closing parenthesis",
             g_dir);
    snprintf(want2, sizeof want2,
             "%s/bad.yaml:8:14: error: rules[2].pattern: invalid regular "
             "expression at offset 8: range out of order in character class",
             g_dir);
    assert_diags(MSGS(want1, want2));
}

static void test_pack_rule_errors(void **state)
{
    (void)state;
    make_dir();
    write_pack("odd", "rules:\n"
                      "  - name: typo\n"
                      "    patern: 'x'\n"
                      "  - name: both\n"
                      "    pattern: 'x'\n"
                      "    path: /a\n"
                      "  - name: dropper\n"
                      "    pattern: 'x'\n"
                      "    action: drop\n"
                      "  - name: dropper\n"
                      "    path: a/b\n"
                      "    action: erase\n"
                      "    check: luhn\n"
                      "  - pattern: 'y'\n"
                      "  - name: empty\n"
                      "    pattern: ''\n"
                      "extra: 1\n");
    hl_redact_rule rules[] = {{HL_REDACT_PACK, "odd", 0, NULL}};
    build_fails(rules, 1, g_dir);
    char w[10][300];
    const char *f[] = {
        "3:5: error: rules[0].patern: unknown key 'patern'; expected one of: "
        "name, pattern, path, action, replacement, check",
        "2:5: error: rules[0]: a rule needs exactly one of 'pattern' (a "
        "regular expression) or 'path' (a JSON Pointer or glob)",
        "4:5: error: rules[1]: a rule needs exactly one of 'pattern' (a "
        "regular expression) or 'path' (a JSON Pointer or glob)",
        "9:13: error: rules[2].action: a pattern rule can mask or hash what "
        "it matches; drop applies to path rules",
        "10:11: error: rules[3].name: the rule name 'dropper' is already used "
        "at line 7; rename one of them",
        "12:13: error: rules[3].action: unknown value 'erase'; expected one "
        "of: mask, drop, hash",
        "13:12: error: rules[3].check: a check applies to pattern rules only",
        "14:5: error: rules[4]: a rule needs a 'name' (such as "
        "aws-access-key-id)",
        "16:14: error: rules[5].pattern: expected a regular expression, got "
        "an empty string",
        "17:1: error: extra: unknown key 'extra'; expected: rules",
    };
    for (size_t i = 0; i < 10; i++)
        snprintf(w[i], sizeof w[i], "%s/odd.yaml:%s", g_dir, f[i]);
    assert_diags(
        MSGS(w[9], w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]));
}

static void test_pack_yaml_error(void **state)
{
    (void)state;
    make_dir();
    write_pack("broken", "rules:\n  - name: x\n    pattern: 'unclosed\n");
    write_pack("list", "- just a list\n");
    hl_redact_rule rules[] = {{HL_REDACT_PACK, "broken", 0, NULL},
                              {HL_REDACT_PACK, "list", 0, NULL}};
    build_fails(rules, 2, g_dir);
    assert_int_equal(g_diags.n, 2);
    char buf[512], want[256];
    hl_diag_format(&g_diags.v[0], buf, sizeof buf);
    snprintf(want, sizeof want, "%s/broken.yaml:", g_dir);
    assert_memory_equal(buf, want, strlen(want));
    assert_non_null(strstr(buf, "error: "));
    hl_diag_format(&g_diags.v[1], buf, sizeof buf);
    snprintf(want, sizeof want,
             "%s/list.yaml:1:1: error: expected a mapping with 'rules:', a "
             "list of rules",
             g_dir);
    assert_string_equal(buf, want);
}

static void test_policy_rule_errors(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {
        {HL_REDACT_FIELD, "data/token", HL_REDACT_MASK, NULL},
        {HL_REDACT_PATTERN, "a{2,1}", HL_REDACT_MASK, NULL},
        {HL_REDACT_PATTERN, "x", HL_REDACT_DROP, NULL},
        {HL_REDACT_FIELD, "/a/~2", HL_REDACT_MASK, NULL},
        {HL_REDACT_FIELD, "/ok", HL_REDACT_MASK, "\xff"},
    };
    build_fails(rules, 5, PACKS);
    assert_diags(MSGS(
        "error: redact[0].path: expected a JSON Pointer such as "
        "/data/labels/token or a glob such as **/password, got 'data/token'",
        "error: redact[1].pattern: invalid regular expression at offset 5: "
        "numbers out of order in {} quantifier",
        "error: redact[2].pattern: a pattern rule can mask or hash what it "
        "matches; drop applies to path rules",
        "error: redact[3].path: '/a/~2': '~' must be followed by 0 (for ~) or "
        "1 (for /)",
        "error: redact[4].replacement: the replacement is not valid UTF-8 "
        "text"));
    hl_diags_free(&g_diags);
    hl_redact_rule ok[] = {{HL_REDACT_FIELD, "/s", HL_REDACT_HASH, NULL}};
    assert_int_equal(hl_redactor_create(ok, 1, PACKS, (const unsigned char *)"",
                                        0, &g_diags, &g_r),
                     HL_ECONFIG);
    assert_null(g_r);
    assert_diags(MSGS("error: the hash key is empty; give a secret, or none "
                      "for a random key per process"));
}

/* Nesting deeper than the limit is refused, not half redacted silently. */
static void test_too_deep(void **state)
{
    (void)state;
    hl_redact_rule rules[] = {{HL_REDACT_FIELD, "**/x", HL_REDACT_MASK, NULL}};
    g_r = build(rules, 1, NULL);
    json_t *leaf = json_string("password=hunter2");
    g_doc = leaf;
    for (int i = 0; i < HL_REDACT_MAX_DEPTH + 1; i++) {
        json_t *a = json_array();
        assert_non_null(a);
        assert_int_equal(json_array_append_new(a, g_doc), 0);
        g_doc = a;
    }
    assert_int_equal(hl_redact_json(g_r, g_doc), HL_ETOOBIG);
    assert_int_equal(hl_redact_json(g_packs, g_doc), HL_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_aws_access_key_id, teardown),
        cmocka_unit_test_teardown(test_aws_secret_access_key, teardown),
        cmocka_unit_test_teardown(test_github_token, teardown),
        cmocka_unit_test_teardown(test_slack_token, teardown),
        cmocka_unit_test_teardown(test_jwt, teardown),
        cmocka_unit_test_teardown(test_private_key_block, teardown),
        cmocka_unit_test_teardown(test_bearer_token, teardown),
        cmocka_unit_test_teardown(test_password_pair, teardown),
        cmocka_unit_test_teardown(test_basic_auth, teardown),
        cmocka_unit_test_teardown(test_url_password, teardown),
        cmocka_unit_test_teardown(test_email, teardown),
        cmocka_unit_test_teardown(test_phone, teardown),
        cmocka_unit_test_teardown(test_card_number, teardown),
        cmocka_unit_test_teardown(test_ipv4, teardown),
        cmocka_unit_test_teardown(test_masks_are_stable, teardown),
        cmocka_unit_test_teardown(test_field_pointer, teardown),
        cmocka_unit_test_teardown(test_field_glob, teardown),
        cmocka_unit_test_teardown(test_field_trailing_deep, teardown),
        cmocka_unit_test_teardown(test_field_drop_mask_hash, teardown),
        cmocka_unit_test_teardown(test_field_array_drop, teardown),
        cmocka_unit_test_teardown(test_hash_keyed, teardown),
        cmocka_unit_test_teardown(test_fields_then_patterns, teardown),
        cmocka_unit_test_teardown(test_canonical_event, teardown),
        cmocka_unit_test_teardown(test_secret_fields_in_pack, teardown),
        cmocka_unit_test_teardown(test_redact_text, teardown),
        cmocka_unit_test_teardown(test_keys_with_nul, teardown),
        cmocka_unit_test_teardown(test_threads, teardown),
        cmocka_unit_test_teardown(test_pattern_secret_group, teardown),
        cmocka_unit_test_teardown(test_unknown_pack, teardown),
        cmocka_unit_test_teardown(test_pack_bad_regex, teardown),
        cmocka_unit_test_teardown(test_pack_rule_errors, teardown),
        cmocka_unit_test_teardown(test_pack_yaml_error, teardown),
        cmocka_unit_test_teardown(test_policy_rule_errors, teardown),
        cmocka_unit_test_teardown(test_too_deep, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
