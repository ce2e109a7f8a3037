/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_l3fwd_hardcoded.bpf.c: case04 "hardcoded" forwarding (seed 001, xdp_case04).
 *
 * Every frame gets h_dest = L3FWD_DST_MAC and goes out of L3FWD_IFINDEX (bpf_redirect).
 * The seed edited both into the C source; pfrps passes them as -D knobs
 * (pfrps-xdp l3fwd --mode hardcoded -r OUT_DEV --dest-mac MAC). Frames shorter than an
 * Ethernet header pass to the kernel. Entry point: pfrps_fwd_hard.
 */
#include "xdp_stats.h"
#include "xdp_parse.h"

#ifndef L3FWD_IFINDEX
#define L3FWD_IFINDEX 0
#endif
#ifndef L3FWD_DST_MAC
#define L3FWD_DST_MAC 0x000000000000ULL
#endif

static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

int pfrps_fwd_hard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = xdp_parse_eth(data, data_end);

	if (!eth)
		return stats_record_action(ctx, XDP_PASS);
	xdp_mac_from_u64(eth->h_dest, L3FWD_DST_MAC);
	return stats_record_action(ctx, bpf_redirect(L3FWD_IFINDEX, 0));
}
