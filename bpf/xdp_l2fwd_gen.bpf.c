/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_l2fwd_gen.bpf.c: the l2fwd benchmark's traffic source (bench/xdp_l2fwd.py).
 *
 * Run by BPF_PROG_TEST_RUN in live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES), it redirects
 * every frame to GEN_IFINDEX (the switch side's veth), so the uplink receives xdp_frames as
 * a NIC driver hands them to XDP, not skbs from a packet socket. Live mode recycles frame
 * pages without copying the data again, and xdp_l2fwd rewrites the first 18 bytes (it pops
 * the tag), so the program writes them back first: GEN_W0, GEN_W1 (bytes 0-7, 8-15 as
 * little-endian u64) and GEN_W2 (bytes 16-17, little-endian u16). With -DGEN_DROP=1 it drops
 * every frame instead: the generator's own cost, which the benchmark subtracts.
 */
#include <uapi/linux/bpf.h>

#ifndef GEN_IFINDEX
#define GEN_IFINDEX 0
#endif
#ifndef GEN_DROP
#define GEN_DROP 0
#endif
#ifndef GEN_W0
#define GEN_W0 0
#endif
#ifndef GEN_W1
#define GEN_W1 0
#endif
#ifndef GEN_W2
#define GEN_W2 0
#endif

int xdp_l2fwd_gen(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;

	if (data + 18 > data_end)
		return XDP_ABORTED;
	*(__u64 *)data = GEN_W0;
	*(__u64 *)(data + 8) = GEN_W1;
	*(__u16 *)(data + 16) = GEN_W2;
	if (GEN_DROP)
		return XDP_DROP;
	return bpf_redirect(GEN_IFINDEX, 0);
}
