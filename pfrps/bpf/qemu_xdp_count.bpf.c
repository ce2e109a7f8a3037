/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qemu_xdp_count.bpf.c: the QEMU topology's native-XDP check (./run qemu, pfrps/qemu/guest.py).
 *
 * Counts the frames reaching the node's enp1s0 at the driver hook, per class, and passes them
 * all (XDP_PASS), so pfrps behind it sees the same frames:
 *   slot 0: PPPoE discovery frames (ethertype QEMU_XDP_ETHERTYPE, default 0x8863, the seed's)
 *   slot 1: every other frame (the guests' hand-shake frames)
 * Per-CPU array: no atomics on the fast path; user space sums the CPUs.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

#ifndef QEMU_XDP_ETHERTYPE
#define QEMU_XDP_ETHERTYPE 0x8863
#endif

BPF_PERCPU_ARRAY(xdp_frames, __u64, 2);

int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 slot = 1;
	__u64 *n;

	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(QEMU_XDP_ETHERTYPE))
		slot = 0;
	n = xdp_frames.lookup(&slot);
	if (n)
		*n += 1;
	return XDP_PASS;
}
