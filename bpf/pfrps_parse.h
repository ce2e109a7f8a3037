/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pfrps_parse.h: bound-checked frame parsing shared by the pfrps steering programs.
 *
 * Both helpers read relative to the MAC header (BPF_HDR_START_MAC), so they work in a
 * socket filter (where skb->data is at the MAC header) and in a PACKET_FANOUT_EBPF
 * program (which runs before af_packet pushes the MAC header back, so plain offsets
 * would read the network header).
 */
#ifndef PFRPS_PARSE_H
#define PFRPS_PARSE_H

#include "pfrps.h"

#define PFRPS_ETH_ALEN 6
#define PFRPS_ETH_SRC_OFF 6

/* Copy the Ethernet source address into mac. 0 on success, -1 when the frame is
 * shorter than an Ethernet header. */
static __always_inline int pfrps_load_src_mac(struct __sk_buff *skb, __u8 mac[PFRPS_ETH_ALEN])
{
	if (bpf_skb_load_bytes_relative(skb, PFRPS_ETH_SRC_OFF, mac, PFRPS_ETH_ALEN,
					BPF_HDR_START_MAC) < 0)
		return -1;
	return 0;
}

/* 1 when the frame's ethertype (skb->protocol, after any VLAN tag the kernel stripped)
 * is one of opts->ethertypes, or when opts->n_ethertypes is 0; else 0. */
static __always_inline int pfrps_ethertype_ok(struct __sk_buff *skb, const struct pfrps_opts *opts)
{
	__u16 proto = bpf_ntohs(skb->protocol);
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

#endif /* PFRPS_PARSE_H */
