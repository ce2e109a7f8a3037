/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_pass.bpf.c: the seed's dummy program for veth peers (case04 "xdp_pass").
 *
 * Native XDP_REDIRECT into a veth delivers only when the peer has an XDP program of its
 * own; this one passes every frame to the kernel and counts it (xdp_stats.h).
 * Entry point: pfrps_xdp_pass.
 */
#include "xdp_stats.h"

static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

int pfrps_xdp_pass(struct xdp_md *ctx)
{
	return stats_record_action(ctx, XDP_PASS);
}
