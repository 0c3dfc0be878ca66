/* test_plugin.c - connector plugins: found, loaded, refused with a clear message, configured, rendered through the real webhook connector. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "err.h"
#include "plugin.h"
#include "sdk.h"
#include "verify.h"

#include <dlfcn.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Built by `make build/test/plugins/picky.so build/test/plugins/bad_abi.so
 * build/test/plugins/no_entry.so build/test/plugins/short_desc.so
 * build/test/connectors/webhook.so`. */
static const char *const needed[] = {
    "build/test/plugins/picky.so",      "build/test/plugins/bad_abi.so",
    "build/test/plugins/no_entry.so",   "build/test/plugins/short_desc.so",
    "build/test/connectors/webhook.so",
};

#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define GH_SECRET "It's a Secret to Everybody"
#define NOW_MS INT64_C(1717243200123) /* 2024-06-01T12:00:00.123Z */
#define DELIVERY_ID "01HZDLVRY00000000000000001"

/* snprintf that fails the test when the text does not fit. */
static void sfmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sfmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        fail_msg("a test buffer of %zu bytes is too small", size);
}

/* ---- fixture ------------------------------------------------------------ */

static char root[PATH_MAX];        /* the repository, absolute */
static char plugins_dir[PATH_MAX + 32]; /* root/build/test/plugins */
static char conn_dir[PATH_MAX + 32];    /* root/build/test/connectors */

/* What a test made, freed by the teardown even when an assertion fails. */
static struct {
    hl_diags cdiags; /* the configuration loader's */
    hl_diags diags;  /* the plugin loader's */
    hl_config *cfg;
    hl_plugins *p;
    hlc_request req;
    json_t *event;
    char tmp[64]; /* a scratch folder, or "" */
} g;

/* The repository's top: from this file's path as compiled, or else from the
 * test binary's place in build/test/unit/. */
static int find_root(void)
{
    char guess[PATH_MAX], probe[PATH_MAX + 32];
    const char *self = __FILE__;
    const char *cut = strstr(self, "tests/unit/");
    sfmt(guess, sizeof guess, "%.*s", cut ? (int)(cut - self) : 0, self);
    if (!guess[0])
        sfmt(guess, sizeof guess, ".");
    sfmt(probe, sizeof probe, "%s/engine/plugin.c", guess);
    if (access(probe, R_OK)) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return -1;
        exe[n] = 0;
        char *b = strstr(exe, "/build/test/unit/");
        if (!b)
            return -1;
        *b = 0;
        sfmt(guess, sizeof guess, "%s", exe);
    }
    if (!realpath(guess, root))
        return -1;
    sfmt(plugins_dir, sizeof plugins_dir, "%s/build/test/plugins", root);
    sfmt(conn_dir, sizeof conn_dir, "%s/build/test/connectors", root);
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
        sfmt(probe, sizeof probe, "%s/%s", root, needed[i]);
        if (access(probe, R_OK)) {
            fprintf(stderr, "test_plugin: %s is missing; build it with make "
                            "%s\n", probe, needed[i]);
            return -1;
        }
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    hl_request_init(&g.req);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hl_request_free(&g.req);
    json_decref(g.event);
    hl_plugins_release(g.p);
    hl_config_destroy(g.cfg);
    hl_diags_free(&g.cdiags);
    hl_diags_free(&g.diags);
    if (g.tmp[0]) {
        char path[PATH_MAX];
        sfmt(path, sizeof path, "%s/renamed.so", g.tmp);
        unlink(path);
        rmdir(g.tmp);
    }
    return 0;
}

static void dump_diags(const hl_diags *d)
{
    char buf[4096];
    for (size_t i = 0; i < d->n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        print_message("  %s\n", buf);
    }
}

/* Load a configuration whose connectors_path is the test plugins' and the
 * test connectors' folders, then its plugins. Line 1 is connectors_path, so
 * body starts at line 2. Returns hl_plugins_load's code. */
static int load_with_path(const char *path_line, const char *body)
{
    char text[8192];
    sfmt(text, sizeof text, "%s\n%s", path_line, body);
    hl_plugins_release(g.p);
    g.p = NULL;
    hl_config_destroy(g.cfg);
    g.cfg = NULL;
    int rc = hl_config_load_string("t.yaml", text, strlen(text), &g.cdiags,
                                   &g.cfg);
    if (rc || g.cdiags.n) {
        dump_diags(&g.cdiags);
        fail_msg("the test configuration does not load cleanly: %s",
                 hl_err_name(rc));
    }
    hl_plugins *p = (hl_plugins *)&g; /* anything but NULL */
    rc = hl_plugins_load(g.cfg, &g.diags, &p);
    if (rc) {
        assert_null(p);
    } else {
        assert_non_null(p);
        g.p = p;
    }
    return rc;
}

static int load(const char *body)
{
    char line[2 * PATH_MAX + 64];
    sfmt(line, sizeof line, "connectors_path: [\"%s\", \"%s\"]",
             plugins_dir, conn_dir);
    return load_with_path(line, body);
}

/* The plugin loader's messages are exactly want (NULL-terminated), as the
 * user reads them. */
static void assert_diags(const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    char buf[4096];
    int same = g.diags.n == n;
    for (size_t i = 0; same && i < n; i++) {
        hl_diag_format(&g.diags.v[i], buf, sizeof buf);
        same = !strcmp(buf, want[i]);
    }
    if (!same) {
        print_message("expected:\n");
        for (size_t i = 0; i < n; i++)
            print_message("  %s\n", want[i]);
        print_message("got:\n");
        dump_diags(&g.diags);
        fail_msg("the messages differ");
    }
}

#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_MSGS ((const char *const[]){NULL})

/* A message about the plugin file NAME in folder DIR. */
static const char *at_file(char *buf, size_t size, const char *where,
                           const char *dir, const char *name, const char *rest)
{
    sfmt(buf, size, "%s%s/%s.so%s", where, dir, name, rest);
    return buf;
}

/* ---- refusals ----------------------------------------------------------- */

#define ONE(plugin)                                                            \
    "connectors:\n"                                                            \
    "  x:\n"                                                                   \
    "    plugin: " plugin "\n"                                                 \
    "routes:\n"                                                                \
    "  - to: [x]\n"

static void test_bad_abi_refused(void **state)
{
    (void)state;
    int rc = load(ONE("bad_abi"));
    char want[2 * PATH_MAX];
    at_file(want, sizeof want, "t.yaml:4:13: error: connectors.x: ",
            plugins_dir, "bad_abi",
            " was built for connector ABI 2.0, and this hookline loads ABI "
            "1.x: rebuild it against this hookline's hookline/connector.h");
    assert_diags(MSGS(want));
    /* Told apart from a plugin that is not there or not a connector. */
    assert_int_equal(rc, HL_EABI);
    assert_int_equal(g.diags.errors, 1);
}

static void test_short_descriptor_refused(void **state)
{
    (void)state;
    int rc = load(ONE("short_desc"));
    char want[2 * PATH_MAX];
    at_file(want, sizeof want, "t.yaml:4:13: error: connectors.x: ",
            plugins_dir, "short_desc",
            ": its descriptor is 16 bytes, less than ABI 1.0's 72: the plugin "
            "was not built with hookline/connector.h");
    assert_diags(MSGS(want));
    assert_int_equal(rc, HL_EABI);
}

static void test_no_entry_refused(void **state)
{
    (void)state;
    assert_int_equal(load(ONE("no_entry")), HL_EPLUGIN);
    char want[2 * PATH_MAX];
    at_file(want, sizeof want, "t.yaml:4:13: error: connectors.x: ",
            plugins_dir, "no_entry",
            " is not a hookline connector: it exports no "
            "hookline_connector_entry function (define one with "
            "HLC_DEFINE_CONNECTOR from hookline/connector.h)");
    assert_diags(MSGS(want));
}

static void test_missing_plugin(void **state)
{
    (void)state;
    assert_int_equal(load(ONE("nosuch")), HL_EPLUGIN);
    char want[3 * PATH_MAX];
    sfmt(want, sizeof want,
             "t.yaml:4:13: error: connectors.x: no connector plugin 'nosuch': "
             "nosuch.so is not in %s, %s (set connectors_path to the folder "
             "that holds it; `hookline connectors` lists what is there)",
             plugins_dir, conn_dir);
    assert_diags(MSGS(want));
}

/* Every connector is tried, so one run reports every problem; the code is
 * the first problem's. */
static void test_every_connector_reported(void **state)
{
    (void)state;
    assert_int_equal(load("connectors:\n"
                          "  a: {plugin: nosuch}\n"
                          "  b: {plugin: bad_abi}\n"
                          "  c: {plugin: picky, channel: '#ok', auth: {token: "
                          "t}}\n"
                          "routes:\n"
                          "  - to: [a, b, c]\n"),
                     HL_EPLUGIN);
    assert_int_equal(g.diags.errors, 2);
    char buf[4096];
    hl_diag_format(&g.diags.v[0], buf, sizeof buf);
    assert_non_null(strstr(buf, "t.yaml:3:15: error: connectors.a: no "
                                "connector plugin 'nosuch'"));
    hl_diag_format(&g.diags.v[1], buf, sizeof buf);
    assert_non_null(strstr(buf, "t.yaml:4:15: error: connectors.b: "));
    assert_non_null(strstr(buf, "was built for connector ABI 2.0"));
}

static void test_bad_keys(void **state)
{
    (void)state;
    assert_int_equal(load("connectors:\n"
                          "  ops:\n"
                          "    plugin: picky\n"
                          "    chanel: \"#ops\"\n"
                          "    mode: medium\n"
                          "    retries: many\n"
                          "    wait: soon\n"
                          "    text: \"{{#a}}\"\n"
                          "    auth: {user: bob}\n"
                          "    extra: 1\n"
                          "routes:\n"
                          "  - to: [ops]\n"),
                     HL_ECONFIG);
    assert_diags(MSGS(
        "t.yaml:5:5: error: connectors.ops.chanel: unknown key 'chanel'; did "
        "you mean 'channel'?",
        "t.yaml:6:11: error: connectors.ops.mode: 'medium' is not one of "
        "fast|slow",
        "t.yaml:7:14: error: connectors.ops.retries: 'many' is not a whole "
        "number",
        "t.yaml:8:11: error: connectors.ops.wait: 'soon' is not a duration; "
        "write e.g. 500ms, 15s, 2m",
        "t.yaml:9:11: error: connectors.ops.text: the Mustache template does "
        "not compile: line 1, column 7: unclosed section 'a' opened at line "
        "1, column 1",
        "t.yaml:10:11: error: connectors.ops.auth: missing required key "
        "'token' (a token, required when auth is given)",
        "t.yaml:11:5: error: connectors.ops.extra: unknown key 'extra'; "
        "expected one of: url, policy, tenant, timeout, channel, mode, "
        "retries, wait, text, auth",
        "t.yaml:4:5: error: connectors.ops: missing required key 'channel' "
        "(where messages go)"));
}

static void test_section_must_be_a_mapping(void **state)
{
    (void)state;
    assert_int_equal(load("connectors:\n"
                          "  ops:\n"
                          "    plugin: picky\n"
                          "    channel: \"#ops\"\n"
                          "    auth: t0k\n"
                          "routes:\n"
                          "  - to: [ops]\n"),
                     HL_ECONFIG);
    assert_diags(MSGS("t.yaml:6:11: error: connectors.ops.auth: expected a "
                      "mapping, got scalar"));
}

/* create() refusing: "key: why" points at that key, else at the section. */
static void test_create_refusal_points_at_the_key(void **state)
{
    (void)state;
    assert_int_equal(load("connectors:\n"
                          "  ops:\n"
                          "    plugin: picky\n"
                          "    channel: ops\n"
                          "    auth: {token: t0k}\n"
                          "routes:\n"
                          "  - to: [ops]\n"),
                     HL_ECONFIG);
    assert_diags(MSGS("t.yaml:5:14: error: connectors.ops.channel: 'ops' "
                      "must start with '#'"));

    hl_diags_free(&g.diags);
    assert_int_equal(load("connectors:\n"
                          "  ops:\n"
                          "    plugin: picky\n"
                          "    channel: \"#ops\"\n"
                          "    retries: 11\n"
                          "    auth: {token: t0k}\n"
                          "routes:\n"
                          "  - to: [ops]\n"),
                     HL_ECONFIG);
    assert_diags(MSGS("t.yaml:4:5: error: connectors.ops: the picky connector "
                      "refused its configuration: at most 10 retries"));

    /* The webhook connector, on a nested key. */
    hl_diags_free(&g.diags);
    assert_int_equal(load("connectors:\n"
                          "  out:\n"
                          "    plugin: webhook\n"
                          "    url: https://hooks.acme.example/in\n"
                          "    signing:\n"
                          "      standard_webhooks: {secret: nope}\n"
                          "routes:\n"
                          "  - to: [out]\n"),
                     HL_ECONFIG);
    assert_diags(MSGS("t.yaml:7:35: error: "
                      "connectors.out.signing.standard_webhooks.secret: not a "
                      "Standard Webhooks secret: expected whsec_ and base64"));
}

/* ---- loading ------------------------------------------------------------ */

#define GOOD                                                                   \
    "connectors:\n"                                                            \
    "  ops:\n"                                                                 \
    "    plugin: picky\n"                                                      \
    "    channel: \"#ops\"\n"                                                  \
    "    auth: {token: t0k}\n"                                                 \
    "  out:\n"                                                                 \
    "    plugin: webhook\n"                                                    \
    "    url: https://hooks.acme.example/in\n"                                 \
    "  ops2: {plugin: picky, channel: \"#b\", auth: {token: x}}\n"             \
    "routes:\n"                                                                \
    "  - to: [ops, out, ops2]\n"

static void test_good_config_loads(void **state)
{
    (void)state;
    assert_int_equal(load(GOOD), 0);
    assert_diags(NO_MSGS);
    assert_int_equal(hl_plugins_count(g.p), 3);
    hlc_instance *ops = hl_plugins_instance(g.p, 0);
    hlc_instance *out = hl_plugins_instance(g.p, 1);
    hlc_instance *ops2 = hl_plugins_instance(g.p, 2);
    assert_null(hl_plugins_instance(g.p, 3));
    assert_string_equal(ops->name, "ops");
    assert_string_equal(ops->desc->name, "picky");
    assert_string_equal(ops->desc->version, "1.0");
    assert_string_equal(out->name, "out");
    assert_string_equal(out->desc->name, "webhook");
    assert_non_null(out->state);
    assert_ptr_equal(ops2->desc, ops->desc); /* one plugin, loaded once */
    assert_ptr_equal(ops->cfg, &g.cfg->connectors[0]);
    assert_null(ops->kv);
    /* The instance reads its own section through its key table. */
    assert_string_equal(hl_sdk_api.config_string(&ops->config, "channel"),
                        "#ops");
    assert_string_equal(hl_sdk_api.config_string(&ops2->config, "channel"),
                        "#b");
    assert_string_equal(hl_sdk_api.config_string(&ops->config, "mode"),
                        "fast");
    assert_int_equal(hl_sdk_api.config_int(&ops->config, "wait"), 1000);

    /* picky skips every event. */
    char err[256] = "";
    hlc_delivery dl = {.struct_size = sizeof dl, .attempt = 1,
                       .delivery_id = DELIVERY_ID, .event_id = "e",
                       .correlation_id = "c", .connector = "ops",
                       .now_ms = NOW_MS};
    g.event = json_pack("{s:s}", "type", "push");
    assert_int_equal(ops->desc->render(ops->state, (const hlc_json *)g.event,
                                       &dl, &g.req, err, sizeof err),
                     HLC_RENDER_SKIP);
    assert_int_equal(g.req.kind, -1);
}

/* A file whose plugin calls itself something else loads, with a warning. */
static void test_renamed_plugin_warns(void **state)
{
    (void)state;
    sfmt(g.tmp, sizeof g.tmp, "/tmp/hl-test-plugin-XXXXXX");
    assert_non_null(mkdtemp(g.tmp));
    char src[PATH_MAX + 16], dst[PATH_MAX];
    sfmt(src, sizeof src, "%s/picky.so", plugins_dir);
    sfmt(dst, sizeof dst, "%s/renamed.so", g.tmp);
    assert_int_equal(symlink(src, dst), 0);
    char line[PATH_MAX + 64];
    sfmt(line, sizeof line, "connectors_path: [\"%s\"]", g.tmp);
    assert_int_equal(load_with_path(line, "connectors:\n"
                                          "  x:\n"
                                          "    plugin: renamed\n"
                                          "    channel: \"#x\"\n"
                                          "    auth: {token: t}\n"
                                          "routes:\n"
                                          "  - to: [x]\n"),
                     0);
    char want[2 * PATH_MAX];
    at_file(want, sizeof want, "t.yaml:4:13: warning: connectors.x: ", g.tmp,
            "renamed",
            " calls itself 'picky'; rename the file or the plugin so the two "
            "agree");
    assert_diags(MSGS(want));
    assert_int_equal(g.diags.errors, 0);
    assert_string_equal(hl_plugins_instance(g.p, 0)->desc->name, "picky");
}

/* Is the shared object at path loaded in this process? */
static int is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

static void test_retain_release_balance(void **state)
{
    (void)state;
    char picky[PATH_MAX + 16];
    sfmt(picky, sizeof picky, "%s/picky.so", plugins_dir);
    assert_false(is_loaded(picky));
    assert_int_equal(load(GOOD), 0);
    assert_true(is_loaded(picky));
    /* The set keeps its own reference to the configuration. */
    hl_config_destroy(g.cfg);
    g.cfg = NULL;

    hl_plugins *p = g.p;
    assert_ptr_equal(hl_plugins_retain(p), p);
    assert_ptr_equal(hl_plugins_retain(p), p);
    hl_plugins_release(p);
    hl_plugins_release(p);
    /* Still one reference: everything still works. */
    assert_true(is_loaded(picky));
    hlc_instance *ops = hl_plugins_instance(p, 0);
    assert_string_equal(hl_sdk_api.config_string(&ops->config, "channel"),
                        "#ops");
    assert_string_equal(hl_plugins_instance(p, 1)->desc->name, "webhook");
    /* The last release destroys the instances and unloads. */
    g.p = NULL;
    hl_plugins_release(p);
    assert_false(is_loaded(picky));
    hl_plugins_release(NULL);
    assert_null(hl_plugins_retain(NULL));

    /* A refused load unloads what it loaded, too. */
    assert_int_equal(load("connectors:\n"
                          "  ok: {plugin: picky, channel: '#a', auth: {token: "
                          "t}}\n"
                          "  bad: {plugin: picky, channel: nohash, auth: "
                          "{token: t}}\n"
                          "routes:\n"
                          "  - to: [ok, bad]\n"),
                     HL_ECONFIG);
    assert_false(is_loaded(picky));
}

/* Calls to kv_* reach the queue attached, under the instance's name. */
static struct {
    char connector[64], key[64], value[64];
    int puts;
} kv_seen;

static int fake_kv_put(hl_queue *q, const char *connector, const char *key,
                       const char *value)
{
    (void)q;
    kv_seen.puts++;
    sfmt(kv_seen.connector, sizeof kv_seen.connector, "%s", connector);
    sfmt(kv_seen.key, sizeof kv_seen.key, "%s", key);
    sfmt(kv_seen.value, sizeof kv_seen.value, "%s",
             value ? value : "(deleted)");
    return 0;
}

static void test_attach_reaches_the_queue(void **state)
{
    (void)state;
    assert_int_equal(load(GOOD), 0);
    static const hl_queue_ops ops = {.kv_put = fake_kv_put};
    hl_queue q = {&ops};
    hlc_instance *out = hl_plugins_instance(g.p, 1);
    assert_int_equal(hl_sdk_api.kv_put(out, "k", "v"), HL_ESTORE);
    hl_plugins_attach(g.p, &q);
    assert_ptr_equal(out->kv, &q);
    assert_int_equal(hl_sdk_api.kv_put(out, "ticket", "T-1"), 0);
    assert_string_equal(kv_seen.connector, "out");
    assert_string_equal(kv_seen.key, "ticket");
    assert_string_equal(kv_seen.value, "T-1");
    assert_int_equal(hl_sdk_api.kv_del(out, "ticket"), 0);
    assert_string_equal(kv_seen.value, "(deleted)");
    assert_int_equal(kv_seen.puts, 2);
    hl_plugins_attach(g.p, NULL);
    assert_null(out->kv);
}

static void test_plugin_dirs(void **state)
{
    (void)state;
    char dirs[4][4096];
    assert_int_equal(load(GOOD), 0);
    assert_int_equal(hl_plugin_dirs(g.cfg, dirs, 4), 2);
    assert_string_equal(dirs[0], plugins_dir);
    assert_string_equal(dirs[1], conn_dir);
    assert_int_equal(hl_plugin_dirs(g.cfg, dirs, 1), 1);
    assert_string_equal(dirs[0], plugins_dir);

    /* Without connectors_path: beside the executable, then the installed
     * place. */
    char exe[PATH_MAX], want[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    hl_config *bare = NULL;
    hl_diags d = {0};
    assert_int_equal(hl_config_load_string("b.yaml", "", 0, &d, &bare), 0);
    assert_int_equal(bare->connectors_path.n, 0);
    for (int i = 0; i < 2; i++) {
        memset(dirs, 0, sizeof dirs);
        size_t got = hl_plugin_dirs(i ? NULL : bare, dirs, 4);
        assert_int_equal(got, 2);
        sfmt(want, sizeof want, "%s/connectors", exe);
        assert_string_equal(dirs[0], want);
        sfmt(want, sizeof want, "%s/../lib/hookline/connectors", exe);
        assert_string_equal(dirs[1], want);
    }
    assert_int_equal(hl_plugin_dirs(bare, dirs, 1), 1);
    assert_int_equal(hl_plugin_dirs(bare, dirs, 0), 0);
    hl_config_destroy(bare);
    hl_diags_free(&d);
}

static void test_describe(void **state)
{
    (void)state;
    assert_int_equal(load(GOOD), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(hl_plugins_describe(g.cfg, "picky", f), 0);
    char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    char head[PATH_MAX + 400];
    sfmt(head, sizeof head,
             "picky 1.0\n  checks its configuration; skips every event\n"
             "  file: %s/picky.so\n"
             "  keys (besides url, policy, tenant, timeout):\n"
             "    channel                            string    required\n"
             "      where messages go\n",
             plugins_dir);
    if (strncmp(buf, head, strlen(head)))
        fail_msg("describe printed:\n%s\nwant it to start:\n%s", buf, head);
    assert_non_null(strstr(buf, "    mode                               string "
                                "   default fast; one of fast|slow\n"));
    assert_null(strstr(buf, "webhook")); /* only the one named */
    f = tmpfile();
    assert_non_null(f);
    assert_int_equal(hl_plugins_describe(g.cfg, "nosuch", f), HL_ENOTFOUND);
    fclose(f);
}

/* ---- rendering through the webhook connector ---------------------------- */

#define EVENT_JSON                                                             \
    "{\"specversion\":\"1.0\",\"id\":\"01HZEVT0000000000000000001\","          \
    "\"source\":\"github\",\"type\":\"push\",\"severity\":\"info\","           \
    "\"time\":\"2024-06-01T12:00:00.000Z\",\"data\":{\"title\":\"Disk "        \
    "\\\"/var\\\" full\",\"n\":3}}"

static hlc_instance *webhook_instance(const char *extra)
{
    char body[4096];
    sfmt(body, sizeof body,
             "connectors:\n"
             "  out:\n"
             "    plugin: webhook\n"
             "    url: https://hooks.acme.example/in?team=ops\n"
             "%s"
             "routes:\n"
             "  - to: [out]\n",
             extra);
    if (load(body)) {
        dump_diags(&g.diags);
        fail_msg("the webhook connector did not load");
    }
    hlc_instance *in = hl_plugins_instance(g.p, 0);
    assert_string_equal(in->desc->name, "webhook");
    return in;
}

static int render(hlc_instance *in, char *err, size_t errlen)
{
    if (!g.event) {
        json_error_t e;
        g.event = json_loads(EVENT_JSON, 0, &e);
        assert_non_null(g.event);
    }
    hlc_delivery dl = {.struct_size = sizeof dl,
                       .attempt = 2,
                       .delivery_id = DELIVERY_ID,
                       .event_id = "01HZEVT0000000000000000001",
                       .correlation_id = "corr-1",
                       .connector = "out",
                       .now_ms = NOW_MS};
    err[0] = 0;
    return in->desc->render(in->state, (const hlc_json *)g.event, &dl,
                            &g.req, err, errlen);
}

/* The value of the request's header name; NULL when absent. */
static const char *req_header(void *ctx, const char *name)
{
    const hlc_request *r = ctx;
    const char *v = NULL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name)) {
            if (v)
                fail_msg("header %s is sent twice", name);
            v = r->headers[i].value;
        }
    return v;
}

static void assert_header(const char *name, const char *want)
{
    const char *got = req_header(&g.req, name);
    if (!want) {
        if (got)
            fail_msg("header %s is '%s'; want none", name, got);
        return;
    }
    if (!got)
        fail_msg("header %s is missing; want '%s'", name, want);
    assert_string_equal(got, want);
}

static void test_webhook_renders_signed_event(void **state)
{
    (void)state;
    hlc_instance *in = webhook_instance(
        "    headers: {X-Team: ops}\n"
        "    signing:\n"
        "      standard_webhooks: {secret: " SW_SECRET "}\n"
        "      hmac: {secret: \"" GH_SECRET "\"}\n");
    char err[512];
    assert_int_equal(render(in, err, sizeof err), HLC_RENDER_OK);
    assert_string_equal(err, "");
    hlc_request *r = &g.req;
    assert_int_equal(r->kind, HL_XFER_HTTP);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "https://hooks.acme.example/in?team=ops");
    assert_string_equal(r->idem_header, "Idempotency-Key");

    /* The body is the canonical event as JSON. */
    json_error_t je;
    json_t *sent = json_loadb(r->body, r->body_len, 0, &je);
    if (!sent)
        fail_msg("the body is not JSON: %s", je.text);
    assert_true(json_equal(sent, g.event));
    json_decref(sent);

    assert_header("Content-Type", "application/json");
    assert_header("X-Team", "ops");
    assert_header("webhook-id", DELIVERY_ID);
    assert_header("webhook-timestamp", "1717243200");
    assert_header("Authorization", NULL);

    /* Standard Webhooks: what a receiver would check passes... */
    const char *sw[] = {SW_SECRET};
    hl_verify_cfg v;
    memset(&v, 0, sizeof v);
    v.standard_webhooks_set = true;
    v.standard_webhooks.secrets = (hl_strlist){sw, 1};
    v.standard_webhooks.tolerance_ms = 300000;
    char why[256] = "";
    int rc = hl_verify_request(&v, req_header, r, r->body, r->body_len,
                               NOW_MS / 1000, why, sizeof why);
    if (rc)
        fail_msg("the receiver refuses the request: %s", why);
    /* ...and is exactly the signature over id.timestamp.body. */
    char sig[256];
    hl_strlist l = {sw, 1};
    assert_int_equal(hl_sign_standard_webhooks(&l, DELIVERY_ID,
                                               NOW_MS / 1000, r->body,
                                               r->body_len, sig, sizeof sig),
                     0);
    assert_header("webhook-signature", sig);

    /* GitHub-style HMAC of the body. */
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA256, HL_ENC_HEX, "sha256=",
                                  GH_SECRET, r->body, r->body_len, sig,
                                  sizeof sig),
                     0);
    assert_header("X-Hub-Signature-256", sig);
    const char *gh[] = {GH_SECRET};
    memset(&v, 0, sizeof v);
    v.hmac_set = true;
    v.hmac.header = "X-Hub-Signature-256";
    v.hmac.algorithm = HL_HASH_SHA256;
    v.hmac.prefix = "sha256=";
    v.hmac.encoding = HL_ENC_HEX;
    v.hmac.secrets = (hl_strlist){gh, 1};
    rc = hl_verify_request(&v, req_header, r, r->body, r->body_len,
                           NOW_MS / 1000, why, sizeof why);
    if (rc)
        fail_msg("the receiver refuses the HMAC: %s", why);
}

static void test_webhook_body_template(void **state)
{
    (void)state;
    hlc_instance *in = webhook_instance(
        "    method: PUT\n"
        "    body: '{\"text\":\"{{data.title}}\",\"n\":{{data.n}}}'\n"
        "    auth: {bearer: tok-123}\n"
        "    signing:\n"
        "      hmac: {secret: s3cret, header: X-Sig, algorithm: sha512, "
        "encoding: base64, prefix: \"\"}\n");
    char err[512];
    assert_int_equal(render(in, err, sizeof err), HLC_RENDER_OK);
    assert_string_equal(g.req.method, "PUT");
    /* Values are JSON-escaped inside the template's string literals. */
    assert_int_equal(g.req.body_len, strlen(g.req.body));
    assert_string_equal(g.req.body, "{\"text\":\"Disk \\\"/var\\\" full\","
                                    "\"n\":3}");
    assert_header("Authorization", "Bearer tok-123");
    assert_header("webhook-signature", NULL); /* not configured */
    char sig[256];
    assert_int_equal(hl_sign_hmac(HL_HASH_SHA512, HL_ENC_BASE64, "", "s3cret",
                                  g.req.body, g.req.body_len, sig, sizeof sig),
                     0);
    assert_header("X-Sig", sig);
    assert_header("X-Hub-Signature-256", NULL);
}

static void test_webhook_non_json_template_fails(void **state)
{
    (void)state;
    hlc_instance *in =
        webhook_instance("    body: 'alert: {{data.title}}'\n");
    char err[512];
    assert_int_equal(render(in, err, sizeof err), HLC_RENDER_FAILED);
    assert_string_equal(err, "the body template made text that is not JSON, "
                             "and content_type is application/json");
    assert_int_equal(g.req.kind, -1); /* nothing to send */
    assert_int_equal(g.req.n_headers, 0);

    /* Another content type takes any text. */
    hl_request_free(&g.req);
    hl_request_init(&g.req);
    in = webhook_instance("    body: 'alert: {{data.title}}'\n"
                          "    content_type: text/plain\n"
                          "    auth: {basic: \"user:pw\"}\n");
    assert_int_equal(render(in, err, sizeof err), HLC_RENDER_OK);
    assert_header("Content-Type", "text/plain");
    assert_header("Authorization", "Basic dXNlcjpwdw==");
    assert_true(!strncmp(g.req.body, "alert: Disk ", 12));
}

/* A header name no request can carry is refused when the configuration is
 * loaded, not at every delivery. */
static void test_webhook_bad_header_fails(void **state)
{
    (void)state;
    int rc = load("connectors:\n"
                  "  out:\n"
                  "    plugin: webhook\n"
                  "    url: https://hooks.acme.example/in\n"
                  "    headers: {\"Bad Name\": x}\n"
                  "routes:\n"
                  "  - to: [out]\n");
    assert_int_equal(rc, HL_ECONFIG);
    assert_int_equal(g.diags.errors, 1);
    char buf[4096];
    hl_diag_format(&g.diags.v[0], buf, sizeof buf);
    assert_string_equal(buf, "t.yaml:6:14: error: connectors.out.headers: "
                             "'Bad Name' is not a header a request can "
                             "carry");
}

/* A configured value that cannot go in a header never will: either the
 * configuration is refused, or the render fails saying why. Retrying it
 * (HLC_RENDER_RETRY) would only fill the retry queue. */
static void test_webhook_bad_configured_header_value(void **state)
{
    (void)state;
    int rc = load("connectors:\n"
                  "  out:\n"
                  "    plugin: webhook\n"
                  "    url: https://hooks.acme.example/in\n"
                  "    content_type: \"text/plain\\r\\nX-Admin: yes\"\n"
                  "routes:\n"
                  "  - to: [out]\n");
    if (rc) {
        assert_int_equal(rc, HL_ECONFIG);
        char buf[4096];
        hl_diag_format(&g.diags.v[0], buf, sizeof buf);
        assert_non_null(strstr(buf, "content_type"));
        return;
    }
    char err[512];
    int r = render(hl_plugins_instance(g.p, 0), err, sizeof err);
    if (r != HLC_RENDER_FAILED || !err[0])
        fail_msg("render returned %d with err '%s'; want HLC_RENDER_FAILED "
                 "(%d) saying what is wrong",
                 r, err, HLC_RENDER_FAILED);
    assert_null(req_header(&g.req, "X-Admin"));
}

int main(void)
{
    if (find_root()) {
        fprintf(stderr, "test_plugin: cannot find the repository and its "
                        "test plugins\n");
        return 1;
    }
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_bad_abi_refused),
        T(test_short_descriptor_refused),
        T(test_no_entry_refused),
        T(test_missing_plugin),
        T(test_every_connector_reported),
        T(test_bad_keys),
        T(test_section_must_be_a_mapping),
        T(test_create_refusal_points_at_the_key),
        T(test_good_config_loads),
        T(test_renamed_plugin_warns),
        T(test_retain_release_balance),
        T(test_attach_reaches_the_queue),
        T(test_plugin_dirs),
        T(test_describe),
        T(test_webhook_renders_signed_event),
        T(test_webhook_body_template),
        T(test_webhook_non_json_template_fails),
        T(test_webhook_bad_header_fails),
        T(test_webhook_bad_configured_header_value),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
