/* test_netguard.c - the SSRF guard: ranges, IPv6 forms, the allow list. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* text as a socket address, IPv4 or IPv6. */
static const struct sockaddr *sa(const char *text)
{
    static struct sockaddr_storage ss;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(443);
    } else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(443);
    } else {
        fail_msg("bad address in the test: %s", text);
    }
    return (const struct sockaddr *)&ss;
}

static hl_cidr cidr(const char *net, unsigned prefix)
{
    hl_cidr c;
    memset(&c, 0, sizeof c);
    c.family = strchr(net, ':') ? AF_INET6 : AF_INET;
    c.prefix = prefix;
    c.text = net;
    assert_int_equal(inet_pton(c.family, net, c.addr), 1);
    return c;
}

typedef struct {
    const char *addr;
    const char *why; /* a part of the reason; NULL: allowed */
} row;

static void check_rows(const row *rows, size_t n, const hl_cidr *allow,
                       size_t n_allow)
{
    for (size_t i = 0; i < n; i++) {
        char why[256] = "untouched";
        int refused =
            hl_addr_refused(sa(rows[i].addr), allow, n_allow, why, sizeof why);
        if (!rows[i].why && refused)
            fail_msg("%s: refused, want allowed (%s)", rows[i].addr, why);
        if (!rows[i].why) {
            assert_string_equal(why, "");
            continue;
        }
        if (!refused)
            fail_msg("%s: allowed, want refused (%s)", rows[i].addr,
                     rows[i].why);
        if (!strstr(why, rows[i].why))
            fail_msg("%s: reason \"%s\" lacks \"%s\"", rows[i].addr, why,
                     rows[i].why);
        /* Every reason names the address and says what to do. */
        if (strncmp(why, rows[i].addr, strlen(rows[i].addr)))
            fail_msg("%s: reason \"%s\" does not start with the address",
                     rows[i].addr, why);
        if (!strstr(why, "outbound.allow_networks"))
            fail_msg("%s: reason \"%s\" does not say what to do", rows[i].addr,
                     why);
    }
}

#define N(a) (sizeof(a) / sizeof *(a))

static void test_ipv4_classes(void **state)
{
    (void)state;
    static const row rows[] = {
        {"0.0.0.0", "an unspecified address (0.0.0.0/32)"},
        {"0.1.2.3", "\"this network\""},
        {"10.0.0.0", "a private address (10.0.0.0/8)"},
        {"10.255.255.255", "a private address (10.0.0.0/8)"},
        {"11.0.0.0", NULL},
        {"9.255.255.255", NULL},
        {"100.63.255.255", NULL},
        {"100.64.0.0", "carrier-grade NAT) address (100.64.0.0/10)"},
        {"100.127.255.255", "carrier-grade NAT"},
        {"100.128.0.0", NULL},
        {"100.100.100.200", "a cloud metadata address"},
        {"127.0.0.1", "a loopback address (127.0.0.0/8)"},
        {"127.255.255.254", "a loopback address"},
        {"169.254.169.254", "a cloud metadata address (169.254.169.254/32)"},
        {"169.254.170.2", "a cloud metadata address"},
        {"169.254.0.1", "a link-local address (169.254.0.0/16)"},
        {"169.255.0.1", NULL},
        {"172.15.255.255", NULL},
        {"172.16.0.1", "a private address (172.16.0.0/12)"},
        {"172.31.255.255", "a private address (172.16.0.0/12)"},
        {"172.32.0.0", NULL},
        {"192.0.0.8", "IETF protocol assignments"},
        {"192.0.2.1", "a documentation address (192.0.2.0/24)"},
        {"192.0.3.1", NULL},
        {"192.88.99.1", "6to4 relay"},
        {"192.168.0.1", "a private address (192.168.0.0/16)"},
        {"192.169.0.1", NULL},
        {"198.18.0.1", "a benchmarking address (198.18.0.0/15)"},
        {"198.19.255.255", "a benchmarking address"},
        {"198.20.0.0", NULL},
        {"198.51.100.7", "a documentation address (198.51.100.0/24)"},
        {"203.0.113.9", "a documentation address (203.0.113.0/24)"},
        {"224.0.0.1", "a multicast address (224.0.0.0/4)"},
        {"239.255.255.250", "a multicast address"},
        {"240.0.0.1", "a reserved address (240.0.0.0/4)"},
        {"255.255.255.254", "a reserved address"},
        {"255.255.255.255", "the broadcast address"},
        {"1.1.1.1", NULL},
        {"8.8.8.8", NULL},
        {"93.184.216.34", NULL},
        {"223.255.255.255", NULL},
    };
    check_rows(rows, N(rows), NULL, 0);
}

static void test_ipv6_classes(void **state)
{
    (void)state;
    static const row rows[] = {
        {"::", "an unspecified address (::/128)"},
        {"::1", "a loopback address (::1/128)"},
        {"fc00::1", "a private (unique local) address (fc00::/7)"},
        {"fd12:3456::1", "unique local"},
        {"fdff:ffff::1", "unique local"},
        {"fd00:ec2::254", "a cloud metadata address (fd00:ec2::254/128)"},
        {"fe80::1", "a link-local address (fe80::/10)"},
        {"febf:ffff::1", "link-local"},
        {"fec0::1", "site-local"},
        {"ff02::1", "a multicast address (ff00::/8)"},
        {"ff0e::101", "multicast"},
        {"2001:db8::1", "a documentation address (2001:db8::/32)"},
        {"3fff::1", "a documentation address (3fff::/20)"},
        {"2001::1", "Teredo"},
        {"2001:2::1", "a benchmarking address (2001:2::/48)"},
        {"2001:10::1", "IETF protocol assignments"},
        {"100::1", "discard-only"},
        {"64:ff9b:1::a00:1", "local-use NAT64"},
        {"4000::1", "a reserved address (outside 2000::/3)"},
        {"e000::1", "outside 2000::/3"},
        {"2606:4700::1111", NULL},
        {"2a00:1450:4001:82a::200e", NULL},
        {"2620:fe::fe", NULL},
        {"2001:200::1", NULL},
        {"3ffe::1", NULL},
    };
    check_rows(rows, N(rows), NULL, 0);
}

/* IPv6 forms that carry an IPv4 address are judged by that address. */
static void test_ipv6_forms_of_ipv4(void **state)
{
    (void)state;
    static const row rows[] = {
        {"::ffff:10.1.2.3", "IPv4-mapped address (::ffff:0:0/96) for "
                            "10.1.2.3, which is a private address"},
        {"::ffff:127.0.0.1", "a loopback address"},
        {"::ffff:169.254.169.254", "a cloud metadata address"},
        {"::ffff:100.64.0.1", "carrier-grade NAT"},
        {"::ffff:0.0.0.0", "unspecified"},
        {"::ffff:1.1.1.1", NULL},
        {"::10.1.2.3", "IPv4-compatible address (::/96) for 10.1.2.3"},
        {"::127.0.0.1", "loopback"},
        {"::8.8.8.8", NULL},
        {"64:ff9b::10.0.0.1", "NAT64 address (64:ff9b::/96) for 10.0.0.1"},
        {"64:ff9b::169.254.169.254", "cloud metadata"},
        {"64:ff9b::1.1.1.1", NULL},
        {"2002:a00:1::1", "6to4 address (2002::/16) for 10.0.0.1"},
        {"2002:7f00:1::", "loopback"},
        {"2002:a9fe:a9fe::1", "cloud metadata"},
        {"2002:101:101::1", NULL},
    };
    check_rows(rows, N(rows), NULL, 0);
}

static void test_allow_list_comes_first(void **state)
{
    (void)state;
    const hl_cidr allow[] = {
        cidr("10.0.0.0", 8),
        cidr("fd00::", 8),
        cidr("169.254.169.254", 32),
        cidr("100.64.0.0", 16),
    };
    static const row rows[] = {
        {"10.0.0.5", NULL},
        {"10.255.0.1", NULL},
        {"::ffff:10.0.0.5", NULL}, /* an IPv4 network allows its v6 forms */
        {"64:ff9b::10.0.0.5", NULL},
        {"2002:a00:5::1", NULL},
        {"fd00::1", NULL},
        {"fd00:ec2::254", NULL},
        {"169.254.169.254", NULL},
        {"::ffff:169.254.169.254", NULL},
        {"100.64.255.255", NULL},
        {"100.65.0.0", "carrier-grade NAT"},
        {"169.254.169.253", "link-local"},
        {"fc00::1", "unique local"},
        {"fe80::1", "link-local"},
        {"192.168.1.1", "private"},
        {"127.0.0.1", "loopback"},
        {"11.0.0.1", NULL},
    };
    check_rows(rows, N(rows), allow, N(allow));
}

static void test_allow_list_matches_family_and_prefix(void **state)
{
    (void)state;
    char why[256];
    /* An IPv6 network says nothing about IPv4 addresses. */
    hl_cidr v6 = cidr("::", 0);
    assert_int_equal(hl_addr_refused(sa("10.0.0.1"), &v6, 1, why, sizeof why),
                     1);
    assert_int_equal(hl_addr_refused(sa("fe80::1"), &v6, 1, why, sizeof why),
                     0);
    /* 0.0.0.0/0 allows every IPv4 address and its IPv6 forms. */
    hl_cidr all4 = cidr("0.0.0.0", 0);
    assert_int_equal(
        hl_addr_refused(sa("127.0.0.1"), &all4, 1, why, sizeof why), 0);
    assert_int_equal(
        hl_addr_refused(sa("::ffff:127.0.0.1"), &all4, 1, why, sizeof why), 0);
    assert_int_equal(hl_addr_refused(sa("::1"), &all4, 1, why, sizeof why), 1);
    /* A prefix is matched bit by bit: 10.0.0.0/9 is 10.0-127.x.x. */
    hl_cidr ten9 = cidr("10.0.0.0", 9);
    assert_int_equal(
        hl_addr_refused(sa("10.127.255.255"), &ten9, 1, why, sizeof why), 0);
    assert_int_equal(
        hl_addr_refused(sa("10.128.0.0"), &ten9, 1, why, sizeof why), 1);
    /* An impossible prefix matches nothing. */
    hl_cidr bad = cidr("10.0.0.0", 33);
    assert_int_equal(hl_addr_refused(sa("10.0.0.1"), &bad, 1, why, sizeof why),
                     1);
}

static void test_reason_is_a_sentence(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(hl_addr_refused(sa("10.1.2.3"), NULL, 0, why, sizeof why),
                     1);
    assert_string_equal(why, "10.1.2.3 is a private address (10.0.0.0/8); add "
                             "it to outbound.allow_networks to allow it");
    assert_int_equal(
        hl_addr_refused(sa("::ffff:169.254.169.254"), NULL, 0, why, sizeof why),
        1);
    assert_string_equal(
        why, "::ffff:169.254.169.254 is an IPv4-mapped address "
             "(::ffff:0:0/96) for 169.254.169.254, which is a cloud metadata "
             "address (169.254.169.254/32); add it to outbound.allow_networks "
             "to allow it");
    assert_int_equal(hl_addr_refused(sa("::1"), NULL, 0, why, sizeof why), 1);
    assert_string_equal(why, "::1 is a loopback address (::1/128); add it to "
                             "outbound.allow_networks to allow it");
}

static void test_odd_inputs(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(hl_addr_refused(NULL, NULL, 0, why, sizeof why), 1);
    assert_non_null(strstr(why, "not IPv4 or IPv6"));
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    assert_int_equal(
        hl_addr_refused((const struct sockaddr *)&un, NULL, 0, why, sizeof why),
        1);
    assert_non_null(strstr(why, "family"));
    /* No room for a reason, or a short one: still a verdict, still a
     * terminated string. */
    assert_int_equal(hl_addr_refused(sa("10.0.0.1"), NULL, 0, NULL, 0), 1);
    assert_int_equal(hl_addr_refused(sa("1.1.1.1"), NULL, 0, NULL, 0), 0);
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(
        hl_addr_refused(sa("10.0.0.1"), NULL, 0, small, sizeof small), 1);
    assert_string_equal(small, "10.0.0.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_classes),
        cmocka_unit_test(test_ipv6_classes),
        cmocka_unit_test(test_ipv6_forms_of_ipv4),
        cmocka_unit_test(test_allow_list_comes_first),
        cmocka_unit_test(test_allow_list_matches_family_and_prefix),
        cmocka_unit_test(test_reason_is_a_sentence),
        cmocka_unit_test(test_odd_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
