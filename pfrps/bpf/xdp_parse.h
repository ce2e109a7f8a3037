/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_parse.h: bound-checked header parsing and rewriting for the pfrps-xdp programs.
 *
 * Every pointer returned has been checked against data_end (the verifier insists, and a
 * short frame must never be read past its end). Sources: the kernel's samples/bpf
 * xdp_fwd_kern.c (ip_decrease_ttl), RFC 1624 (incremental checksum update).
 */
#ifndef PFRPS_XDP_PARSE_H
#define PFRPS_XDP_PARSE_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

/* The Ethernet header at data, or NULL when the frame is shorter than 14 bytes. */
static __always_inline struct ethhdr *xdp_parse_eth(void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	return eth;
}

/* The IPv4 header right after eth (no options needed past 20 bytes), or NULL when short. */
static __always_inline struct iphdr *xdp_parse_ipv4(struct ethhdr *eth, void *data_end)
{
	struct iphdr *iph = (void *)(eth + 1);

	if ((void *)(iph + 1) > data_end)
		return NULL;
	return iph;
}

/* The IPv6 header right after eth, or NULL when short. */
static __always_inline struct ipv6hdr *xdp_parse_ipv6(struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6h = (void *)(eth + 1);

	if ((void *)(ip6h + 1) > data_end)
		return NULL;
	return ip6h;
}

/* Decrement the IPv4 TTL and fix the header checksum incrementally (RFC 1624: the TTL is
 * the high byte of a 16-bit word, so the sum grows by 0x0100, with the end-around carry).
 * Returns the new TTL. */
static __always_inline int xdp_ipv4_decrease_ttl(struct iphdr *iph)
{
	__u32 check = (__u32)iph->check;

	check += (__u32)bpf_htons(0x0100);
	iph->check = (__sum16)(check + (check >= 0xFFFF));
	return --iph->ttl;
}

/* Copy a 6-byte MAC given as the low 48 bits of v (big-endian order: 0x525400..., the
 * form pfrps passes -D knobs in) into dst. */
static __always_inline void xdp_mac_from_u64(unsigned char *dst, __u64 v)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		dst[i] = (v >> (8 * (ETH_ALEN - 1 - i))) & 0xff;
}

#endif /* PFRPS_XDP_PARSE_H */
