/* SPDX-License-Identifier: GPL-2.0-or-later */
/* flow.h: a modular, bound-checked flow parser for XDP (seed 003: dsahern/bpf-progs flow.h
 * and flow.c, reimplemented).
 *
 * flow_parse(data, data_end, &fl) walks Ethernet, an 802.1Q tag (and an outer 802.1ad tag,
 * QinQ), IPv4 (fragments flagged; IPIP's inner addresses and inner transport), IPv6, and
 * TCP/UDP ports or ICMP/ICMPv6 type, code and echo id. Every read is checked against
 * data_end before it happens.
 *
 * Return (the seed's convention): 0 parsed; > 0 a protocol this parser does not handle (the
 * caller passes the frame on); < 0 malformed (a header cut short or impossible).
 *
 * Compile-time knobs (-D), each with the default below:
 *   FLOW_QINQ=1      accept an outer 802.1ad (0x88a8) tag before the 802.1Q one
 *   FLOW_IPV6=1      parse IPv6 (0: IPv6 returns > 0)
 *   FLOW_IPIP=1      parse an IPIP inner header (0: stop at the outer header)
 *   FLOW_STOP_AT=4   last layer parsed: 2 (Ethernet and VLAN tags), 3 (IP), 4 (transport)
 */
#ifndef PFRPS_FLOW_H
#define PFRPS_FLOW_H

#ifndef FLOW_QINQ
#define FLOW_QINQ 1
#endif
#ifndef FLOW_IPV6
#define FLOW_IPV6 1
#endif
#ifndef FLOW_IPIP
#define FLOW_IPIP 1
#endif
#ifndef FLOW_STOP_AT
#define FLOW_STOP_AT 4
#endif

#define FLOW_ETH_P_IP 0x0800
#define FLOW_ETH_P_IPV6 0x86DD
#define FLOW_ETH_P_8021Q 0x8100
#define FLOW_ETH_P_8021AD 0x88A8
#define FLOW_VLAN_VID_MASK 0x0fff
#define FLOW_AF_INET 2
#define FLOW_AF_INET6 10
#define FLOW_IPPROTO_ICMP 1
#define FLOW_IPPROTO_IPIP 4
#define FLOW_IPPROTO_TCP 6
#define FLOW_IPPROTO_UDP 17
#define FLOW_IPPROTO_ICMPV6 58
#define FLOW_IP_MF 0x2000
#define FLOW_IP_OFFSET 0x1fff

struct flow_ethhdr {
	__u8 h_dest[6];
	__u8 h_source[6];
	__be16 h_proto;
};

struct flow_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct flow_ports {
	__be16 sport;
	__be16 dport;
};

struct flow_icmp {
	__u8 type;
	__u8 code;
	__be16 id;
};

/* A dissected frame. Addresses and ports stay in network byte order. */
struct flow {
	union {
		__be32 ipv4;
		__be32 ipv6[4];
	} saddr;
	union {
		__be32 ipv4;
		__be32 ipv6[4];
	} daddr;
	__u8 family;         /* FLOW_AF_INET, FLOW_AF_INET6, or 0 */
	__u8 protocol;       /* L4 protocol of the outer IP header */
	__u8 fragment;       /* 1: an IPv4 fragment (outer or inner), no transport header read */
	__u8 inner_protocol; /* IPIP: the inner header's protocol */
	__be32 inner_saddr;  /* IPIP: inner addresses */
	__be32 inner_daddr;
	__u16 vlan;          /* VLAN id of the 802.1Q tag (host order), 0 when untagged */
	__u16 outer_vlan;    /* VLAN id of an outer 802.1ad tag (QinQ), 0 when none */
	__u16 l3_off;        /* offset of the IP header from the start of the frame */
	__u16 h_proto;       /* ethertype after the tags (host order) */
	union {
		struct flow_ports ports;
		struct flow_icmp icmp;
	};
};

static __always_inline int flow_parse_transport(struct flow *fl, __u8 proto, void *nh,
						void *data_end)
{
	switch (proto) {
	case FLOW_IPPROTO_TCP:
	case FLOW_IPPROTO_UDP: {
		struct flow_ports *p = nh;

		if ((void *)(p + 1) > data_end)
			return -1;
		fl->ports = *p; /* the first four bytes of TCP and UDP: sport, dport */
		return 0;
	}
	case FLOW_IPPROTO_ICMP:
	case FLOW_IPPROTO_ICMPV6: {
		__u8 *h = nh;

		if ((void *)(h + 8) > data_end)
			return -1;
		fl->icmp.type = h[0];
		fl->icmp.code = h[1];
		/* echo request/reply (ICMP 8/0, ICMPv6 128/129) and ICMP timestamps (13/14)
		 * carry an identifier; 1 when it is 0, as the seed does */
		if ((proto == FLOW_IPPROTO_ICMP && (h[0] == 8 || h[0] == 0 || h[0] == 13 || h[0] == 14)) ||
		    (proto == FLOW_IPPROTO_ICMPV6 && (h[0] == 128 || h[0] == 129))) {
			__be16 id = *(__be16 *)(h + 4);

			fl->icmp.id = id ? id : bpf_htons(1);
		}
		return 0;
	}
	}
	return 1;
}

static __always_inline int flow_parse_ipv4(struct flow *fl, void *nh, void *data_end)
{
	__u8 *iph = nh;
	__u8 proto;

	if ((void *)(iph + 20) > data_end)
		return -1;
	if ((iph[0] >> 4) != 4 || (iph[0] & 0xf) < 5)
		return -1;
	fl->family = FLOW_AF_INET;
	fl->protocol = proto = iph[9];
	fl->saddr.ipv4 = *(__be32 *)(iph + 12);
	fl->daddr.ipv4 = *(__be32 *)(iph + 16);
	/* fragments carry no transport header (but the first one, which we flag too) */
	if (bpf_ntohs(*(__be16 *)(iph + 6)) & (FLOW_IP_MF | FLOW_IP_OFFSET)) {
		fl->fragment = 1;
		return 0;
	}
	nh = iph + ((iph[0] & 0xf) << 2);
#if FLOW_IPIP
	if (proto == FLOW_IPPROTO_IPIP) {
		__u8 *in = nh;

		if ((void *)(in + 20) > data_end)
			return -1;
		if ((in[0] >> 4) != 4 || (in[0] & 0xf) < 5)
			return -1;
		fl->inner_protocol = proto = in[9];
		fl->inner_saddr = *(__be32 *)(in + 12);
		fl->inner_daddr = *(__be32 *)(in + 16);
		if (bpf_ntohs(*(__be16 *)(in + 6)) & (FLOW_IP_MF | FLOW_IP_OFFSET)) {
			fl->fragment = 1;
			return 0;
		}
		nh = in + ((in[0] & 0xf) << 2);
	}
#endif
#if FLOW_STOP_AT >= 4
	return flow_parse_transport(fl, proto, nh, data_end);
#else
	return 0;
#endif
}

#if FLOW_IPV6
static __always_inline int flow_parse_ipv6(struct flow *fl, void *nh, void *data_end)
{
	__u8 *ip6h = nh;

	if ((void *)(ip6h + 40) > data_end)
		return -1;
	if ((ip6h[0] >> 4) != 6)
		return -1;
	fl->family = FLOW_AF_INET6;
	fl->protocol = ip6h[6];
	__builtin_memcpy(fl->saddr.ipv6, ip6h + 8, 16);
	__builtin_memcpy(fl->daddr.ipv6, ip6h + 24, 16);
#if FLOW_STOP_AT >= 4
	return flow_parse_transport(fl, fl->protocol, ip6h + 40, data_end);
#else
	return 0;
#endif
}
#endif

/* Parse the Ethernet header and up to two VLAN tags; fills fl->vlan, fl->outer_vlan,
 * fl->h_proto and fl->l3_off, and *l3 (the network header). */
static __always_inline int flow_parse_l2(void *data, void *data_end, struct flow *fl, void **l3)
{
	struct flow_ethhdr *eth = data;
	struct flow_vlan_hdr *vh;
	void *nh = eth + 1;
	__u16 proto;

	if (nh > data_end)
		return -1;
	proto = bpf_ntohs(eth->h_proto);
#if FLOW_QINQ
	if (proto == FLOW_ETH_P_8021AD) {
		vh = nh;
		if ((void *)(vh + 1) > data_end)
			return -1;
		fl->outer_vlan = bpf_ntohs(vh->tci) & FLOW_VLAN_VID_MASK;
		proto = bpf_ntohs(vh->encapsulated_proto);
		nh = vh + 1;
	}
#endif
	if (proto == FLOW_ETH_P_8021Q) {
		vh = nh;
		if ((void *)(vh + 1) > data_end)
			return -1;
		fl->vlan = bpf_ntohs(vh->tci) & FLOW_VLAN_VID_MASK;
		proto = bpf_ntohs(vh->encapsulated_proto);
		nh = vh + 1;
	}
	fl->h_proto = proto;
	fl->l3_off = nh - data;
	*l3 = nh;
	return 0;
}

/* Parse a whole frame (see the top of this file for the return values). */
static __always_inline int flow_parse(void *data, void *data_end, struct flow *fl)
{
	void *nh = data;
	int rc = flow_parse_l2(data, data_end, fl, &nh);

	if (rc)
		return rc;
#if FLOW_STOP_AT >= 3
	if (fl->h_proto == FLOW_ETH_P_IP)
		return flow_parse_ipv4(fl, nh, data_end);
#if FLOW_IPV6
	if (fl->h_proto == FLOW_ETH_P_IPV6)
		return flow_parse_ipv6(fl, nh, data_end);
#endif
	return 1;
#else
	return 0;
#endif
}

#endif /* PFRPS_FLOW_H */
