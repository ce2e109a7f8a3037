/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_l3fwd_fib.bpf.c: case04 forwarding by the kernel's FIB (seed 001, xdp_case04_fib).
 *
 * bpf_fib_lookup (bpf-helpers(7)) for IPv4 and IPv6 from the ingress device; on success the
 * TTL / hop limit is decremented (IPv4 checksum fixed incrementally), the resolved MACs are
 * written and the frame goes to the FIB's egress ifindex through the DEVMAP tx_port, which
 * user space fills with the ifindexes allowed as egress (tx_port[i] = i, the seed's
 * `prog_user -d DEV`). BLACKHOLE, UNREACHABLE and PROHIBIT routes drop; everything else
 * (no neighbour yet, TTL <= 1, non-IP, forwarding disabled, an egress not in tx_port)
 * passes to the kernel. Source: the kernel's samples/bpf/xdp_fwd_kern.c.
 * Entry point: pfrps_fwd_fib.
 */
#include "xdp_stats.h"
#include "xdp_parse.h"

#ifndef L3FWD_DEVMAP_SIZE
#define L3FWD_DEVMAP_SIZE 256
#endif
#define PFRPS_AF_INET 2
#define PFRPS_AF_INET6 10
#define PFRPS_IPV6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)

BPF_DEVMAP(tx_port, L3FWD_DEVMAP_SIZE);

static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

int pfrps_fwd_fib(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = xdp_parse_eth(data, data_end);
	struct iphdr *iph = NULL;
	struct ipv6hdr *ip6h = NULL;
	int rc;

	if (!eth)
		return stats_record_action(ctx, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		iph = xdp_parse_ipv4(eth, data_end);
		if (!iph || iph->ttl <= 1)
			return stats_record_action(ctx, XDP_PASS);
		fib.family = PFRPS_AF_INET;
		fib.tos = iph->tos;
		fib.l4_protocol = iph->protocol;
		fib.tot_len = bpf_ntohs(iph->tot_len);
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = iph->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		ip6h = xdp_parse_ipv6(eth, data_end);
		if (!ip6h || ip6h->hop_limit <= 1)
			return stats_record_action(ctx, XDP_PASS);
		fib.family = PFRPS_AF_INET6;
		fib.flowinfo = *(__be32 *)ip6h & PFRPS_IPV6_FLOWINFO_MASK;
		fib.l4_protocol = ip6h->nexthdr;
		fib.tot_len = bpf_ntohs(ip6h->payload_len);
		__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	} else {
		return stats_record_action(ctx, XDP_PASS);
	}
	fib.ifindex = ctx->ingress_ifindex;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE ||
	    rc == BPF_FIB_LKUP_RET_PROHIBIT)
		return stats_record_action(ctx, XDP_DROP);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return stats_record_action(ctx, XDP_PASS);

	if (iph)
		xdp_ipv4_decrease_ttl(iph);
	else if (ip6h)
		ip6h->hop_limit--;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return stats_record_action(ctx, tx_port.redirect_map(fib.ifindex, XDP_PASS));
}
