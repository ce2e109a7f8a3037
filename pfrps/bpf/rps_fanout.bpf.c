/* SPDX-License-Identifier: GPL-2.0-or-later */
/* rps_fanout.bpf.c: PACKET_FANOUT_EBPF program for --steering fanout.
 *
 * Attached once to a PACKET_FANOUT group of N sockets (PACKET_FANOUT_DATA, see
 * packet(7)); the kernel runs it once per frame whatever N is and queues the frame on
 * member (return value % N). It returns the same worker index as rps_filter.bpf.c.
 * It runs before af_packet pushes the MAC header back, so it reads the source address
 * relative to the MAC header (pfrps_load_src_mac).
 *
 * Entry points: pfrps_fanout; and pfrps_filter, the member sockets' ethertype check
 * (loaded with worker_count 1: a fanout program cannot drop), defined here too so that
 * one compilation per run gives both.
 */
#include <uapi/linux/bpf.h>
#include "pfrps_steer.h"

BPF_ARRAY(pfrps_opts, struct pfrps_opts, 1);

int pfrps_fanout(struct __sk_buff *skb)
{
	int key = 0;

	return pfrps_steer_index(skb, pfrps_opts.lookup(&key));
}

int pfrps_filter(struct __sk_buff *skb)
{
	int key = 0;

	return pfrps_steer_accept(skb, pfrps_opts.lookup(&key));
}
