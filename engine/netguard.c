/* netguard.c - the SSRF guard: which addresses outbound requests may reach. */
#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A special-purpose range: an address inside it is refused. */
typedef struct {
    uint8_t net[16]; /* network byte order; 4 bytes used for IPv4 */
    unsigned prefix;
    const char *text; /* the range as a user writes it */
    const char *what; /* "a private address" */
} range;

#define METADATA "a cloud metadata address"

/* First match wins: the more specific ranges come first. */
static const range v4_ranges[] = {
    {{169, 254, 169, 254}, 32, "169.254.169.254/32", METADATA},
    {{169, 254, 170, 2}, 32, "169.254.170.2/32", METADATA},
    {{100, 100, 100, 200}, 32, "100.100.100.200/32", METADATA},
    {{0, 0, 0, 0}, 32, "0.0.0.0/32", "an unspecified address"},
    {{0, 0, 0, 0}, 8, "0.0.0.0/8", "a reserved (\"this network\") address"},
    {{10, 0, 0, 0}, 8, "10.0.0.0/8", "a private address"},
    {{100, 64, 0, 0},
     10,
     "100.64.0.0/10",
     "a shared (carrier-grade NAT) address"},
    {{127, 0, 0, 0}, 8, "127.0.0.0/8", "a loopback address"},
    {{169, 254, 0, 0}, 16, "169.254.0.0/16", "a link-local address"},
    {{172, 16, 0, 0}, 12, "172.16.0.0/12", "a private address"},
    {{192, 0, 0, 0},
     24,
     "192.0.0.0/24",
     "a reserved (IETF protocol assignments) address"},
    {{192, 0, 2, 0}, 24, "192.0.2.0/24", "a documentation address"},
    {{192, 88, 99, 0},
     24,
     "192.88.99.0/24",
     "a reserved (6to4 relay anycast) address"},
    {{192, 168, 0, 0}, 16, "192.168.0.0/16", "a private address"},
    {{198, 18, 0, 0}, 15, "198.18.0.0/15", "a benchmarking address"},
    {{198, 51, 100, 0}, 24, "198.51.100.0/24", "a documentation address"},
    {{203, 0, 113, 0}, 24, "203.0.113.0/24", "a documentation address"},
    {{224, 0, 0, 0}, 4, "224.0.0.0/4", "a multicast address"},
    {{255, 255, 255, 255}, 32, "255.255.255.255/32", "the broadcast address"},
    {{240, 0, 0, 0}, 4, "240.0.0.0/4", "a reserved address"},
};

static const range v6_ranges[] = {
    {{0}, 128, "::/128", "an unspecified address"},
    {{[15] = 1}, 128, "::1/128", "a loopback address"},
    {{0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54},
     128,
     "fd00:ec2::254/128",
     METADATA},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01},
     48,
     "64:ff9b:1::/48",
     "a local-use NAT64 address"},
    {{0x01, 0x00}, 64, "100::/64", "a discard-only address"},
    {{0x20, 0x01, 0x00, 0x00}, 32, "2001::/32", "a Teredo tunnel address"},
    {{0x20, 0x01, 0x00, 0x02, 0x00, 0x00},
     48,
     "2001:2::/48",
     "a benchmarking address"},
    {{0x20, 0x01, 0x00, 0x00},
     23,
     "2001::/23",
     "a reserved (IETF protocol assignments) address"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "2001:db8::/32", "a documentation address"},
    {{0x3f, 0xff}, 20, "3fff::/20", "a documentation address"},
    {{0xfc}, 7, "fc00::/7", "a private (unique local) address"},
    {{0xfe, 0x80}, 10, "fe80::/10", "a link-local address"},
    {{0xfe, 0xc0}, 10, "fec0::/10", "a deprecated site-local address"},
    {{0xff}, 8, "ff00::/8", "a multicast address"},
};

/* Every IPv6 address outside 2000::/3 not listed above. */
static const range v6_unallocated = {
    {0x20}, 3, "outside 2000::/3", "a reserved address"};

static int in_net(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full))
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static const range *find(const range *r, size_t n, const uint8_t *a)
{
    for (size_t i = 0; i < n; i++)
        if (in_net(a, r[i].net, r[i].prefix))
            return &r[i];
    return NULL;
}

/* The IPv6 forms that carry an IPv4 address: its name, with v4 filled, or
 * NULL. :: and ::1 are not IPv4-compatible forms. */
static const char *embedded_v4(const uint8_t *a, uint8_t *v4)
{
    static const uint8_t zero[12];
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    const char *form = NULL;
    if (!memcmp(a, mapped, 12))
        form = "an IPv4-mapped address (::ffff:0:0/96)";
    else if (!memcmp(a, nat64, 12))
        form = "a NAT64 address (64:ff9b::/96)";
    else if (!memcmp(a, zero, 12) &&
             ((a[12] | a[13] | a[14]) != 0 || a[15] > 1))
        form = "an IPv4-compatible address (::/96)";
    if (form) {
        memcpy(v4, a + 12, 4);
        return form;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        memcpy(v4, a + 2, 4);
        return "a 6to4 address (2002::/16)";
    }
    return NULL;
}

static int allowed(const hl_cidr *allow, size_t n, int family, const uint8_t *a,
                   const uint8_t *v4)
{
    for (size_t i = 0; i < n; i++) {
        const hl_cidr *c = &allow[i];
        unsigned max = c->family == AF_INET ? 32 : 128;
        if (c->prefix > max)
            continue;
        if (c->family == family && in_net(a, c->addr, c->prefix))
            return 1;
        /* An IPv4 network also lets in the IPv6 forms of its addresses. */
        if (v4 && c->family == AF_INET && in_net(v4, c->addr, c->prefix))
            return 1;
    }
    return 0;
}

int hl_addr_refused(const struct sockaddr *sa, const hl_cidr *allow,
                    size_t n_allow, char *why, size_t whylen)
{
    uint8_t a[16], v4[4];
    char text[INET6_ADDRSTRLEN], v4text[INET_ADDRSTRLEN];
    const char *form = NULL;
    const range *r;
    if (!why)
        whylen = 0;
    if (whylen)
        why[0] = 0;
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        if (whylen)
            snprintf(why, whylen,
                     "the address is of family %d, not IPv4 or IPv6: only "
                     "IP addresses may be reached",
                     sa ? (int)sa->sa_family : -1);
        return 1;
    }
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        inet_ntop(AF_INET, a, text, sizeof text);
        if (allowed(allow, n_allow, AF_INET, a, NULL))
            return 0;
        r = find(v4_ranges, sizeof v4_ranges / sizeof *v4_ranges, a);
    } else {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        inet_ntop(AF_INET6, a, text, sizeof text);
        form = embedded_v4(a, v4);
        if (allowed(allow, n_allow, AF_INET6, a, form ? v4 : NULL))
            return 0;
        if (form) {
            inet_ntop(AF_INET, v4, v4text, sizeof v4text);
            /* inet_ntop writes 64:ff9b::a00:1 for 64:ff9b::10.0.0.1. */
            if (!a[0] && a[1] == 0x64)
                snprintf(text, sizeof text, "64:ff9b::%s", v4text);
            r = find(v4_ranges, sizeof v4_ranges / sizeof *v4_ranges, v4);
        } else {
            r = find(v6_ranges, sizeof v6_ranges / sizeof *v6_ranges, a);
            if (!r && (a[0] & 0xe0) != 0x20)
                r = &v6_unallocated;
        }
    }
    if (!r)
        return 0;
    if (whylen && form)
        snprintf(why, whylen,
                 "%s is %s for %s, which is %s (%s); add it to "
                 "outbound.allow_networks to allow it",
                 text, form, v4text, r->what, r->text);
    else if (whylen)
        snprintf(why, whylen,
                 "%s is %s (%s); add it to outbound.allow_networks to allow "
                 "it",
                 text, r->what, r->text);
    return 1;
}
