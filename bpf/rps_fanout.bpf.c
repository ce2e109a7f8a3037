/* SPDX-License-Identifier: GPL-2.0-or-later */
/* rps_fanout.bpf.c: PACKET_FANOUT_EBPF program for --steering fanout.
 *
 * Attached once to a PACKET_FANOUT group of N sockets (PACKET_FANOUT_DATA, see
 * packet(7)); the kernel runs it once per frame whatever N is and queues the frame on
 * member (return value % N). It returns the same worker index as rps_filter.bpf.c.
 * It runs before af_packet pushes the MAC header back, so it reads the source address
 * relative to the MAC header (pfrps_load_src_mac). A fanout program cannot drop, so
 * each member socket also carries rps_accept.bpf.c for the ethertype check.
 *
 * Entry point: pfrps_fanout.
 */
#include <uapi/linux/bpf.h>
#include "pfrps.h"
#include "pfrps_parse.h"
#include "pfrps_hash.h"

BPF_ARRAY(pfrps_opts, struct pfrps_opts, 1);

int pfrps_fanout(struct __sk_buff *skb)
{
	__u8 mac[PFRPS_ETH_ALEN];
	int key = 0;
	struct pfrps_opts *opts = pfrps_opts.lookup(&key);

	if (!opts || opts->worker_count == 0)
		return 0;
	if (pfrps_load_src_mac(skb, mac) < 0)
		return 0;
	return pfrps_hash(mac, opts->hash_alg) % opts->worker_count;
}
