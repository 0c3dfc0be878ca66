/* netguard.h - the SSRF guard: which resolved addresses outbound requests may reach. */
#ifndef HL_NETGUARD_H
#define HL_NETGUARD_H

#include "config.h"

#include <stddef.h>
#include <sys/socket.h>

/*
 * The SSRF guard: refuse what is not on the public internet, unless it lies
 * inside one of allow (outbound.allow_networks). Loopback, unspecified,
 * private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16,
 * fe80::/10), CGNAT (100.64/10), multicast, broadcast and reserved ranges,
 * documentation and benchmark nets, cloud metadata (169.254.169.254,
 * fd00:ec2::254), and IPv6 forms that embed an IPv4 address (v4-mapped,
 * v4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) judged by that
 * address. Returns 0 when allowed, else 1 with why filled.
 */
int hl_addr_refused(const struct sockaddr *sa, const hl_cidr *allow,
                    size_t n_allow, char *why, size_t whylen);

#endif
