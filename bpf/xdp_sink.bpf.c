/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_sink.bpf.c: the XDP benchmarks' receiver (bench/xdp_l3fwd.py, bench/xdp_lb.py).
 *
 * Attached to the receiving veth in every configuration a benchmark compares, it drops the
 * benchmark's datagrams (IPv4, UDP, destination port SINK_UDP_DPORT; default 9, discard)
 * with XDP_DROP and passes everything else (ARP, ICMP, IPv6, other ports, fragments after
 * the first, short frames) to the kernel, so the topology keeps working. The frames it
 * dropped are the frames delivered: xdp_stats_map's XDP_DROP slot (the seed's struct
 * datarec, per CPU), the rest is counted under XDP_PASS. The receiver then costs the same
 * small program in every configuration instead of an skb and an IP stack per frame.
 * Entry point: pfrps_xdp_sink.
 */
#include "xdp_stats.h"
#include "xdp_parse.h"
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>

#ifndef SINK_UDP_DPORT
#define SINK_UDP_DPORT 9
#endif

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

	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return stats_record_action(ctx, XDP_PASS);
	iph = xdp_parse_ipv4(eth, data_end);
	if (!iph || iph->protocol != IPPROTO_UDP || iph->ihl < 5 || (iph->frag_off & bpf_htons(0x1fff)))
		return stats_record_action(ctx, XDP_PASS);
	udph = (void *)iph + iph->ihl * 4;
	if ((void *)(udph + 1) > data_end || udph->dest != bpf_htons(SINK_UDP_DPORT))
		return stats_record_action(ctx, XDP_PASS);
	return stats_record_action(ctx, XDP_DROP);
}
