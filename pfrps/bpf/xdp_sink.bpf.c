/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_sink.bpf.c: the XDP benchmarks' receiver (bench/xdp_l3fwd.py, bench/xdp_lb.py,
 * bench/xdp_l2fwd.py).
 *
 * Attached to the receiving veth in every configuration a benchmark compares, it drops the
 * benchmark's datagrams (IPv4, protocol SINK_PROTO: UDP (17, the default) or TCP (6),
 * destination port SINK_UDP_DPORT; default 9, discard) with XDP_DROP and passes everything else (ARP, ICMP, IPv6, other ports, fragments after
 * the first, short frames) to the kernel, so the topology keeps working. The frames it
 * dropped are the frames delivered: xdp_stats_map's XDP_DROP slot (the seed's struct
 * datarec, per CPU), the rest is counted under XDP_PASS. The receiver then costs the same
 * small program in every configuration instead of an skb and an IP stack per frame.
 * With SINK_SKIP_VLAN (default 1) one 802.1Q or 802.1ad tag before IPv4 is skipped
 * (bound-checked), so a tagged and an untagged datagram count alike (IEEE 802.1Q): the
 * Linux bridge of bench/xdp_l2fwd.py forwards the frames tagged (on veth the tag travels as
 * skb metadata, so the program sees them untagged; a tag in the data would be skipped),
 * xdp_l2fwd pops the tag.
 * A second tag is not skipped (the frame passes). 0: untagged frames only.
 * Entry point: pfrps_xdp_sink.
 */
#include "xdp_stats.h"
#include "xdp_parse.h"
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>

#ifndef SINK_UDP_DPORT
#define SINK_UDP_DPORT 9
#endif
#ifndef SINK_PROTO
#define SINK_PROTO IPPROTO_UDP
#endif
#ifndef SINK_SKIP_VLAN
#define SINK_SKIP_VLAN 1
#endif

/* struct vlan_hdr of the kernel's if_vlan.h (not a uapi header): the 4 bytes after the MACs'
 * TPID are the TCI and the encapsulated EtherType. */
struct sink_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

int pfrps_xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = xdp_parse_eth(data, data_end);
	struct iphdr *iph;
	struct udphdr *udph;
	__be16 proto;

	if (!eth)
		return stats_record_action(ctx, XDP_PASS);
	proto = eth->h_proto;
	iph = (void *)(eth + 1);
#if SINK_SKIP_VLAN
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct sink_vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > data_end)
			return stats_record_action(ctx, XDP_PASS);
		proto = vh->encap_proto;
		iph = (void *)(vh + 1);
	}
#endif
	if (proto != bpf_htons(ETH_P_IP) || (void *)(iph + 1) > data_end)
		return stats_record_action(ctx, XDP_PASS);
	if (iph->protocol != SINK_PROTO || iph->ihl < 5 || (iph->frag_off & bpf_htons(0x1fff)))
		return stats_record_action(ctx, XDP_PASS);
	udph = (void *)iph + iph->ihl * 4; /* TCP's ports are where UDP's are (RFC 793, 768) */
	if ((void *)(udph + 1) > data_end || udph->dest != bpf_htons(SINK_UDP_DPORT))
		return stats_record_action(ctx, XDP_PASS);
	return stats_record_action(ctx, XDP_DROP);
}
