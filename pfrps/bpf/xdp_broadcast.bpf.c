/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_broadcast.bpf.c: case05's switch in XDP, which the seed says cannot broadcast.
 *
 * bpf_redirect_map with BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS (bpf-helpers(7), kernel
 * 5.14+) sends a copy of the frame to every port in the DEVMAP bcast_ports except the one it
 * came in on. Entries are the ports' ifindexes, written from inside the ports' namespace.
 * Counted as XDP_REDIRECT (xdp_stats.h). Entry point: pfrps_xdp_bcast.
 */
#include "xdp_stats.h"

#ifndef BCAST_MAX_PORTS
#define BCAST_MAX_PORTS 16
#endif

BPF_DEVMAP(bcast_ports, BCAST_MAX_PORTS);

static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

int pfrps_xdp_bcast(struct xdp_md *ctx)
{
	return stats_record_action(ctx, bcast_ports.redirect_map(0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS));
}
