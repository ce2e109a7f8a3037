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
 * Entry point: pfrps_filter. A -b/--ebpf-rps replacement must keep this name and the
 * map below.
 */
#include <uapi/linux/bpf.h>
#include "pfrps_steer.h"

BPF_ARRAY(pfrps_opts, struct pfrps_opts, 1);

int pfrps_filter(struct __sk_buff *skb)
{
	int key = 0;

	return pfrps_steer_accept(skb, pfrps_opts.lookup(&key));
}
