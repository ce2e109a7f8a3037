/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pfrps_parse.h: bound-checked frame parsing shared by the pfrps steering programs.
 *
 * Both helpers read relative to the MAC header (BPF_HDR_START_MAC), so they work in a
 * socket filter (where skb->data is at the MAC header) and in a PACKET_FANOUT_EBPF
 * program (which runs before af_packet pushes the MAC header back, so plain offsets
 * would read the network header).
 *
 * The source MAC is at offset 6 whatever VLAN tags follow it, so steering by it puts a
 * subscriber on the same worker tagged or not; only the ethertype check looks through tags.
 */
#ifndef PFRPS_PARSE_H
#define PFRPS_PARSE_H

#include "pfrps.h"

#define PFRPS_ETH_ALEN 6
#define PFRPS_ETH_SRC_OFF 6
#define PFRPS_ETH_TYPE_OFF 12
#define PFRPS_VLAN_HLEN 4
#define PFRPS_ETH_P_8021Q 0x8100
#define PFRPS_ETH_P_8021AD 0x88A8

/* VLAN tags (stripped one included) looked through for the ethertype: -D to change. */
#ifndef PFRPS_MAX_VLAN_TAGS
#define PFRPS_MAX_VLAN_TAGS 2
#endif

/* Copy the Ethernet source address into mac. 0 on success, -1 when the frame is
 * shorter than an Ethernet header. */
static __always_inline int pfrps_load_src_mac(struct __sk_buff *skb, __u8 mac[PFRPS_ETH_ALEN])
{
	if (bpf_skb_load_bytes_relative(skb, PFRPS_ETH_SRC_OFF, mac, PFRPS_ETH_ALEN,
					BPF_HDR_START_MAC) < 0)
		return -1;
	return 0;
}

/* 1 when proto (host order) is one of opts->ethertypes, or opts->n_ethertypes is 0. */
static __always_inline int pfrps_ethertype_wanted(const struct pfrps_opts *opts, __u16 proto)
{
	__u32 n = opts->n_ethertypes;

	if (n == 0)
		return 1;
#pragma unroll
	for (int i = 0; i < PFRPS_MAX_ETHERTYPES; i++) {
		if (i >= n)
			break;
		if (opts->ethertypes[i] == proto)
			return 1;
	}
	return 0;
}

static __always_inline int pfrps_is_vlan_tpid(__u16 proto)
{
	return proto == PFRPS_ETH_P_8021Q || proto == PFRPS_ETH_P_8021AD;
}

/* 1 when the frame's ethertype, or the ethertype after up to PFRPS_MAX_VLAN_TAGS 802.1Q
 * (0x8100) / 802.1ad (0x88a8) tags, is wanted (pfrps_ethertype_wanted); else 0.
 *
 * skb->protocol is the ethertype after any tag the kernel already stripped into
 * skb->vlan_tci (on receive, __netif_receive_skb_core strips the outer tag before packet
 * sockets see the frame; that tag counts towards the limit through skb->vlan_present).
 * Its value is also the two bytes at MAC offset 12 (the stripped tag is no longer in the
 * frame), so the next ethertype of a tag chain is 4 bytes further each time (IEEE 802.1Q
 * 9.5: TPID, then a 2-byte TCI). A tag the frame is too short for rejects it. */
static __always_inline int pfrps_ethertype_ok(struct __sk_buff *skb, const struct pfrps_opts *opts)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u32 tags = skb->vlan_present ? 1 : 0;
	__u32 off = PFRPS_ETH_TYPE_OFF;

	if (pfrps_ethertype_wanted(opts, proto))
		return 1;
#pragma unroll
	for (int i = 0; i < PFRPS_MAX_VLAN_TAGS; i++) {
		__be16 next;

		if (!pfrps_is_vlan_tpid(proto) || tags >= PFRPS_MAX_VLAN_TAGS)
			return 0;
		if (bpf_skb_load_bytes_relative(skb, off + PFRPS_VLAN_HLEN, &next, sizeof(next),
						BPF_HDR_START_MAC) < 0)
			return 0;
		proto = bpf_ntohs(next);
		off += PFRPS_VLAN_HLEN;
		tags++;
		if (pfrps_ethertype_wanted(opts, proto))
			return 1;
	}
	return 0;
}

#endif /* PFRPS_PARSE_H */
