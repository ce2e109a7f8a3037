/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_l3fwd_map.bpf.c: case04 forwarding from BPF maps (seed 001, xdp_case04_map).
 *
 * redirect_params maps a source MAC to the destination MAC to write; tx_port[0] is the
 * egress device (a DEVMAP). User space fills both, as the seed's prog_user
 * -d/-r/--src-mac/--dest-mac does (pfrps-xdp l3fwd --mode map). A source MAC not in the map
 * passes to the kernel. Entry point: pfrps_fwd_map.
 */
#include "xdp_stats.h"
#include "xdp_parse.h"

#ifndef L3FWD_MAX_PAIRS
#define L3FWD_MAX_PAIRS 64
#endif

struct mac_addr {
	unsigned char addr[ETH_ALEN];
};

BPF_HASH(redirect_params, struct mac_addr, struct mac_addr, L3FWD_MAX_PAIRS);
BPF_DEVMAP(tx_port, 1);

static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

int pfrps_fwd_map(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = xdp_parse_eth(data, data_end);
	struct mac_addr src;
	struct mac_addr *dst;

	if (!eth)
		return stats_record_action(ctx, XDP_PASS);
	__builtin_memcpy(src.addr, eth->h_source, ETH_ALEN);
	dst = redirect_params.lookup(&src);
	if (!dst)
		return stats_record_action(ctx, XDP_PASS);
	__builtin_memcpy(eth->h_dest, dst->addr, ETH_ALEN);
	/* A missing tx_port entry returns the flags' low bits: XDP_PASS, never a silent drop. */
	return stats_record_action(ctx, tx_port.redirect_map(0, XDP_PASS));
}
