/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_stats.h: the seed's per-action counters (case04 xdp_stats), shared by every XDP and
 * TC program of pfrps-xdp.
 *
 * xdp_stats_map is a PERCPU_ARRAY keyed by verdict (XDP_ABORTED..XDP_REDIRECT for XDP
 * programs; the TC programs use the same five slots, see pfrps/xdp/counters.py). Each slot
 * is a struct datarec: frames and bytes seen, summed over the CPUs by user space (numpy).
 * No atomics needed: each CPU has its own copy.
 *
 * bcc rewrites map calls (xdp_stats_map.lookup) only in the main file, never in a header or
 * a macro, so each program defines the one-line lookup itself, as the seed's helper:
 *
 *   static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
 *   {
 *           return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
 *   }
 */
#ifndef PFRPS_XDP_STATS_H
#define PFRPS_XDP_STATS_H

#include <uapi/linux/bpf.h>

struct datarec {
	__u64 rx_packets;
	__u64 rx_bytes;
};

#ifndef XDP_ACTION_MAX
#define XDP_ACTION_MAX (XDP_REDIRECT + 1)
#endif

BPF_PERCPU_ARRAY(xdp_stats_map, struct datarec, XDP_ACTION_MAX);

/* Count one frame of `bytes` bytes in `rec` (the slot of verdict `key`, NULL when out of
 * range); returns `key` unchanged so a program can end with `return stats_record_action(...)`. */
static __always_inline __u32 stats_count(struct datarec *rec, __u32 key, __u64 bytes)
{
	if (rec) {
		rec->rx_packets++;
		rec->rx_bytes += bytes;
	}
	return key;
}

#endif /* PFRPS_XDP_STATS_H */
