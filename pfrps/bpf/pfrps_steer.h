/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pfrps_steer.h: the steering decisions, shared by rps_filter.bpf.c and rps_fanout.bpf.c.
 *
 * bcc loads only functions defined in the compiled file itself, so each .bpf.c file
 * defines its entry points and calls these. */
#ifndef PFRPS_STEER_H
#define PFRPS_STEER_H

#include "pfrps.h"
#include "pfrps_parse.h"
#include "pfrps_hash.h"

/* Socket-filter verdict: skb->len (keep the whole frame) or 0 (not this socket's).
 * worker_count 1 only checks the ethertype (one worker, or a fanout member). */
static __always_inline int pfrps_steer_accept(struct __sk_buff *skb, const struct pfrps_opts *opts)
{
	__u8 mac[PFRPS_ETH_ALEN];

	if (!opts || opts->worker_count == 0)
		return 0;
	if (!pfrps_ethertype_ok(skb, opts))
		return 0;
	if (opts->worker_count == 1)
		return skb->len;
	if (pfrps_load_src_mac(skb, mac) < 0)
		return 0;
	if (pfrps_hash(mac, opts->hash_alg) % opts->worker_count != opts->worker_id)
		return 0;
	return skb->len;
}

/* Fanout verdict: the worker index hash % worker_count (0 for a frame too short to hash). */
static __always_inline __u32 pfrps_steer_index(struct __sk_buff *skb, const struct pfrps_opts *opts)
{
	__u8 mac[PFRPS_ETH_ALEN];

	if (!opts || opts->worker_count == 0)
		return 0;
	if (pfrps_load_src_mac(skb, mac) < 0)
		return 0;
	return pfrps_hash(mac, opts->hash_alg) % opts->worker_count;
}

#endif /* PFRPS_STEER_H */
