/* SPDX-License-Identifier: GPL-2.0-or-later */
/* rps_filter.bpf.c: socket filter for --steering filter (the seed's design).
 *
 * One copy of this program is attached (SO_ATTACH_BPF) to each worker's PF_PACKET
 * socket, each with its own "pfrps_opts" map. It accepts a frame, at its full length,
 * when hash(source MAC) % worker_count == worker_id and its ethertype is wanted;
 * otherwise it returns 0 and the kernel does not queue the frame on this socket.
 * The kernel runs every worker's copy on every frame: cost grows with N (see
 * rps_fanout.bpf.c for the one-program-per-frame alternative).
 *
 * With worker_count 1 it only checks the ethertype: fanout members use it that way.
 *
 * Entry point: pfrps_filter. A -b/--ebpf-rps replacement must keep this name and the
 * map below.
 */
#include <uapi/linux/bpf.h>
#include "pfrps.h"
#include "pfrps_parse.h"
#include "pfrps_hash.h"

BPF_ARRAY(pfrps_opts, struct pfrps_opts, 1);

int pfrps_filter(struct __sk_buff *skb)
{
	__u8 mac[PFRPS_ETH_ALEN];
	int key = 0;
	struct pfrps_opts *opts = pfrps_opts.lookup(&key);

	if (!opts || opts->worker_count == 0)
		return 0;
	if (!pfrps_ethertype_ok(skb, opts))
		return 0;
	if (opts->worker_count == 1) /* one worker, or a fanout member's ethertype check */
		return skb->len;
	if (pfrps_load_src_mac(skb, mac) < 0)
		return 0;
	if (pfrps_hash(mac, opts->hash_alg) % opts->worker_count != opts->worker_id)
		return 0;
	return skb->len;
}
