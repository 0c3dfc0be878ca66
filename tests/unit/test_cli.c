/* test_cli.c - the command line's pure parts: engine addresses, query
 * strings, stream messages as lines, the websocket handshake's answer. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "buf.h"
#include "cli.h"
#include "err.h"

#include <string.h>

/* ---- addresses ----------------------------------------------------------- */

static void test_url_forms(void **state)
{
    (void)state;
    hl_cli_url u;
    const char *why = NULL;
    assert_int_equal(hl_cli_url_parse("http://127.0.0.1:8080", &u, &why), 0);
    assert_int_equal(u.tls, 0);
    assert_string_equal(u.authority, "127.0.0.1:8080");
    assert_string_equal(u.path, "");
    assert_string_equal(u.base, "http://127.0.0.1:8080");

    assert_int_equal(
        hl_cli_url_parse("HTTPS://hooks.example.com/ops/hl//", &u, &why), 0);
    assert_int_equal(u.tls, 1);
    assert_string_equal(u.authority, "hooks.example.com");
    assert_string_equal(u.path, "/ops/hl");
    assert_string_equal(u.base, "https://hooks.example.com/ops/hl");

    assert_int_equal(hl_cli_url_parse("http://[::1]:9000/", &u, &why), 0);
    assert_string_equal(u.authority, "[::1]:9000");
    assert_string_equal(u.base, "http://[::1]:9000");
    assert_int_equal(hl_cli_url_parse("http://[::1]", &u, &why), 0);
    assert_string_equal(u.authority, "[::1]");
}

static void test_url_refusals_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"ftp://host", "use http://HOST[:PORT] or https://HOST[:PORT]"},
        {"127.0.0.1:8080", "use http://HOST[:PORT] or https://HOST[:PORT]"},
        {"http://", "the host is missing"},
        {"http://:8080", "the host is missing"},
        {"http://host:0", "the port must be a number from 1 to 65535"},
        {"http://host:65536", "the port must be a number from 1 to 65535"},
        {"http://host:80a/", "the port must be a number from 1 to 65535"},
        {"http://host:", "the port must be a number from 1 to 65535"},
        {"http://[::1", "an IPv6 address goes in brackets: http://[::1]:8080"},
        {"http://[::1]x",
         "an IPv6 address goes in brackets: http://[::1]:8080"},
        {"http://[zz]", "an IPv6 address goes in brackets: http://[::1]:8080"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hl_cli_url u;
        const char *why = NULL;
        assert_int_equal(hl_cli_url_parse(bad[i].url, &u, &why), HL_ESYNTAX);
        assert_string_equal(why, bad[i].why);
    }
    hl_cli_url u;
    const char *why = NULL;
    assert_int_equal(hl_cli_url_parse("http://user:pw@host", &u, &why),
                     HL_ESYNTAX);
    assert_non_null(strstr(why, "--token"));
    assert_int_equal(hl_cli_url_parse("http://host/?q=1", &u, &why),
                     HL_ESYNTAX);
    assert_int_equal(hl_cli_url_parse("http://ho st", &u, &why), HL_ESYNTAX);
    assert_int_equal(hl_cli_url_parse("http://host\r\nX: y", &u, &why),
                     HL_ESYNTAX);
}

/* ---- query strings ------------------------------------------------------- */

static void test_query_encodes_values(void **state)
{
    (void)state;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    hl_buf_puts(&b, "/v1/events");
    hl_cli_query_add(&b, "type", "alert.*");
    hl_cli_query_add(&b, "since", "2026-11-28T07:00:00+01:00");
    hl_cli_query_add(&b, "state", "failed,expired");
    hl_cli_query_add(&b, "source", "a b&c=d/é~_-");
    assert_string_equal(b.p, "/v1/events?type=alert.%2A"
                             "&since=2026-11-28T07%3A00%3A00%2B01%3A00"
                             "&state=failed%2Cexpired"
                             "&source=a%20b%26c%3Dd%2F%C3%A9~_-");
    hl_buf_free(&b);
    hl_cli_query_add(&b, "since", "0");
    assert_string_equal(b.p, "?since=0");
    hl_buf_free(&b);
}

/* ---- stream messages as lines -------------------------------------------- */

static void expect_line(const char *json, const char *want)
{
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    assert_int_equal(hl_cli_note_line(json, strlen(json), &b), 0);
    assert_string_equal(b.p, want);
    hl_buf_free(&b);
}

static void test_line_delivery_states(void **state)
{
    (void)state;
    expect_line("{\"attempt\":1,\"connector\":\"sink\",\"delivery_id\":"
                "\"01M8GHMJKV1TVGD8M6R91J9A6S\",\"error_class\":null,"
                "\"event_id\":\"E\",\"reason\":\"200\",\"seq\":12,\"source\":"
                "\"demo\",\"state\":\"delivered\",\"status\":200,\"tenant\":"
                "\"acme\",\"time\":\"2026-11-28T07:39:49.602Z\",\"type\":"
                "\"delivery.state\"}",
                "seq 12  07:39:49.602  delivery.state  acme/demo → sink  "
                "delivered  attempt 1  HTTP 200  01M8GHMJKV1TVGD8M6R91J9A6S");
    expect_line(
        "{\"attempt\":2,\"connector\":\"out\",\"delivery_id\":\"D\","
        "\"error_class\":\"http_5xx\",\"reason\":\"HTTP 503\","
        "\"next_attempt_at\":\"2026-11-28T07:40:00.000Z\",\"seq\":13,"
        "\"source\":\"gh\",\"state\":\"retry\",\"status\":503,"
        "\"tenant\":\"t\",\"time\":\"2026-11-28T07:39:50.000Z\","
        "\"type\":\"delivery.state\"}",
        "seq 13  07:39:50.000  delivery.state  t/gh → out  retry  "
        "attempt 2  HTTP 503  http_5xx: HTTP 503  next 07:40:00.000  D");
    /* Requeued by an operator: the count is of the attempts made so far. */
    expect_line("{\"attempt\":3,\"connector\":\"out\",\"delivery_id\":\"D\","
                "\"reason\":\"retried by an operator\",\"seq\":14,\"source\":"
                "\"gh\",\"state\":\"queued\",\"tenant\":\"t\",\"time\":"
                "\"2026-11-28T07:41:00.000Z\",\"type\":\"delivery.state\"}",
                "seq 14  07:41:00.000  delivery.state  t/gh → out  queued  "
                "after attempt 3  retried by an operator  D");
}

static void test_line_events_and_connectors(void **state)
{
    (void)state;
    expect_line("{\"correlation_id\":\"c\",\"event_id\":\"E1\",\"seq\":1,"
                "\"source\":\"demo\",\"tenant\":\"acme\",\"time\":"
                "\"2026-11-28T07:41:40.838Z\",\"type\":\"event.received\"}",
                "seq 1  07:41:40.838  event.received  acme/demo  E1");
    expect_line("{\"event_id\":\"E1\",\"events\":[{\"deliveries\":[{"
                "\"connector\":\"sink\",\"id\":\"D1\"},{\"connector\":\"chat\","
                "\"id\":\"D2\"}],\"id\":\"E1\",\"type\":\"alert.firing\"},{"
                "\"deliveries\":[],\"id\":\"E2\",\"type\":\"alert.resolved\"}],"
                "\"seq\":2,\"source\":\"am\",\"tenant\":\"acme\",\"time\":"
                "\"2026-11-28T07:41:40.870Z\",\"type\":\"event.normalized\"}",
                "seq 2  07:41:40.870  event.normalized  acme/am  alert.firing "
                "→ sink,chat; alert.resolved (no route)  E1");
    expect_line("{\"event_id\":\"E3\",\"reason\":\"body: not JSON\",\"seq\":3,"
                "\"source\":\"demo\",\"tenant\":\"acme\",\"time\":"
                "\"2026-11-28T07:41:41.000Z\",\"type\":\"event.unparsed\"}",
                "seq 3  07:41:41.000  event.unparsed  acme/demo  body: not "
                "JSON  E3");
    expect_line("{\"connector\":\"sink\",\"reason\":\"by the admin API\","
                "\"seq\":8,\"state\":\"paused\",\"time\":"
                "\"2026-11-28T07:41:46.882Z\",\"type\":\"connector.state\"}",
                "seq 8  07:41:46.882  connector.state  sink  paused  by the "
                "admin API");
    expect_line("{\"seq\":9,\"time\":\"soon\",\"type\":\"something.new\","
                "\"n\":1}",
                "seq 9  soon  something.new  {\"seq\":9,\"time\":\"soon\","
                "\"type\":\"something.new\",\"n\":1}");
}

static void test_line_cleans_control_characters(void **state)
{
    (void)state;
    /* A tenant's webhook must not move the operator's cursor or ring bells. */
    expect_line(
        "{\"event_id\":\"E\\u001b[2J\",\"reason\":\"bad\\nline\\u0007"
        "\\u0085\",\"seq\":4,\"source\":\"s\",\"tenant\":\"t\",\"time\":"
        "\"2026-11-28T07:41:41.000Z\",\"type\":\"event.unparsed\"}",
        "seq 4  07:41:41.000  event.unparsed  t/s  bad line    E [2J");
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    assert_int_equal(hl_cli_note_line("[1]", 3, &b), HL_ESYNTAX);
    assert_int_equal(hl_cli_note_line("{\"seq\":", 7, &b), HL_ESYNTAX);
    hl_buf_free(&b);
}

/* ---- the handshake's answer ---------------------------------------------- */

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int answer(const char *head, const char **why)
{
    return hl_cli_ws_answer(head, strlen(head), RFC_KEY, why);
}

static void test_ws_answer(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(answer("HTTP/1.1 101 Switching Protocols\r\n"
                            "upgrade: WebSocket\r\n"
                            "Connection: keep-alive, Upgrade\r\n"
                            "Sec-WebSocket-Accept:  " RFC_ACCEPT " \r\n\r\n",
                            &why),
                     0);
    assert_int_equal(answer("HTTP/1.1 401 Unauthorized\r\n"
                            "Content-Length: 2\r\n\r\n",
                            &why),
                     401);
    assert_int_equal(answer("HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: AAAA" RFC_ACCEPT "\r\n\r\n",
                            &why),
                     -1);
    assert_string_equal(why, "Sec-WebSocket-Accept does not match the key "
                             "sent");
    assert_int_equal(answer("HTTP/1.1 101 Switching Protocols\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
                            &why),
                     -1);
    assert_string_equal(why, "the 101 answer does not upgrade to websocket");
    assert_int_equal(answer("HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
                            &why),
                     -1);
    assert_string_equal(why, "the 101 answer has no Connection: Upgrade");
    assert_int_equal(answer("SSH-2.0-OpenSSH_9.2\r\n\r\n", &why), -1);
    assert_int_equal(answer("HTTP/1.1 10 x\r\n\r\n", &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_refusals_say_why),
        cmocka_unit_test(test_query_encodes_values),
        cmocka_unit_test(test_line_delivery_states),
        cmocka_unit_test(test_line_events_and_connectors),
        cmocka_unit_test(test_line_cleans_control_characters),
        cmocka_unit_test(test_ws_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
