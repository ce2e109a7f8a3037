/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tc_broadcast.bpf.c: case05 broadcast at TC (seed 000), a cls_bpf direct-action program.
 *
 * On the ingress of each switch port: clone the frame to every other port named in
 * bcast_ports (bpf_clone_redirect to the port's egress, bpf-helpers(7)), then TC_ACT_SHOT
 * the original. Only the ports the user named are flooded, never the seed's loop over
 * ifindex 0..255. Counters (xdp_stats.h): slot TC_ACT_SHOT counts the frames received,
 * slot 4 (TC_CLONED in pfrps/xdp/counters.py) the clones sent.
 * The seed used act_bpf, which this kernel lacks; cls_bpf in direct-action mode on a
 * clsact qdisc does the same. Entry point: pfrps_tc_bcast.
 */
#include <uapi/linux/pkt_cls.h>
#include "xdp_stats.h"

#ifndef BCAST_MAX_PORTS
#define BCAST_MAX_PORTS 16
#endif
#define BCAST_CLONED_SLOT 4

/* slot -> ifindex of a switch port; 0 = unused */
BPF_ARRAY(bcast_ports, __u32, BCAST_MAX_PORTS);

int pfrps_tc_bcast(struct __sk_buff *skb)
{
	__u32 cloned = BCAST_CLONED_SLOT, shot = TC_ACT_SHOT;

#pragma unroll
	for (__u32 i = 0; i < BCAST_MAX_PORTS; i++) {
		__u32 slot = i;
		__u32 *port = bcast_ports.lookup(&slot);

		if (!port || *port == 0 || *port == skb->ifindex)
			continue;
		if (bpf_clone_redirect(skb, *port, 0) == 0)
			stats_count(xdp_stats_map.lookup(&cloned), cloned, skb->len);
	}
	return stats_count(xdp_stats_map.lookup(&shot), shot, skb->len);
}
