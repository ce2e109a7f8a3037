/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_l2fwd_gen.bpf.c: the XDP benchmarks' traffic source (bench/xdp_l2fwd.py, xdp_l3fwd.py,
 * xdp_lb.py).
 *
 * Run by BPF_PROG_TEST_RUN in live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES), it redirects
 * every frame to GEN_IFINDEX (a veth of the caller's namespace), so the veth's peer receives
 * xdp_frames as a NIC driver hands them to XDP, not skbs from a packet socket. Live mode
 * recycles frame pages without copying the data again, and the program under test rewrites
 * headers (l2fwd pops the tag, l3fwd rewrites MACs and the TTL, the LB addresses, ports and
 * checksums), so the program writes the first 8 * GEN_WORDS bytes back first: GEN_W0 ..
 * GEN_W7 (bytes 0-7, 8-15, ... as little-endian u64; GEN_WORDS 1 to 8, default 3).
 * With GEN_FLOWS > 1 the frame must be Ethernet + IPv4 (IHL 5) + UDP or TCP: the source port
 * becomes the template's + (bpf_get_prandom_u32() % GEN_FLOWS), the L4 checksum (UDP's, or
 * TCP's with -DGEN_TCP=1) updated as RFC 1624 eqn. 3 says (UDP's 0 = none stays 0). With GEN_SADDR_FLOWS > 1 the low 16 bits of the IPv4 source address become the
 * template's + (bpf_get_prandom_u32() % GEN_SADDR_FLOWS), the IPv4 header checksum and the L4
 * checksum (its pseudo-header holds the address) updated the same way: many clients, each
 * frame a new 5-tuple (a connection's first SYN, for the LB's connection-setup figure). With -DGEN_DROP=1 it drops every frame instead: the
 * generator's own cost, which a benchmark can subtract.
 */
#include <uapi/linux/bpf.h>

#ifndef GEN_IFINDEX
#define GEN_IFINDEX 0
#endif
#ifndef GEN_DROP
#define GEN_DROP 0
#endif
#ifndef GEN_WORDS
#define GEN_WORDS 3
#endif
#ifndef GEN_FLOWS
#define GEN_FLOWS 1
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
#ifndef GEN_W3
#define GEN_W3 0
#endif
#ifndef GEN_W4
#define GEN_W4 0
#endif
#ifndef GEN_W5
#define GEN_W5 0
#endif
#ifndef GEN_W6
#define GEN_W6 0
#endif
#ifndef GEN_W7
#define GEN_W7 0
#endif

#ifndef GEN_TCP
#define GEN_TCP 0 /* 1: the frame is TCP, not UDP */
#endif
#ifndef GEN_SADDR_FLOWS
#define GEN_SADDR_FLOWS 1
#endif

#define GEN_SPORT_OFF 34 /* 14 (Ethernet) + 20 (IPv4, IHL 5) */
#define GEN_IP_CSUM_OFF 24
#define GEN_SADDR_LO_OFF 28 /* the low 16 bits of the IPv4 source address */
#define GEN_L4_CSUM_OFF (GEN_TCP ? 50 : 40) /* 34 + the checksum's offset in the TCP/UDP header */

/* RFC 1624 eqn. 3 for one 16-bit word: HC' = ~(~HC + ~m + m'). Ones' complement sums do not
 * depend on byte order, so network-order words go in as they are. */
static __always_inline __u16 gen_csum16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* *field (a big-endian 16-bit word) += delta; the checksums that cover it updated. */
static __always_inline void gen_bump(__u16 *field, __u32 delta, __u16 *l4csum, __u16 *ipcsum)
{
	__u16 old = *field, new = __builtin_bswap16(__builtin_bswap16(old) + delta), c;

	*field = new;
	if (ipcsum)
		*ipcsum = gen_csum16(*ipcsum, old, new);
	if (GEN_TCP || *l4csum) {
		c = gen_csum16(*l4csum, old, new);
		*l4csum = (c || GEN_TCP) ? c : 0xffff; /* UDP: a computed 0 is sent as all ones */
	}
}

int xdp_l2fwd_gen(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	const __u64 words[8] = {GEN_W0, GEN_W1, GEN_W2, GEN_W3, GEN_W4, GEN_W5, GEN_W6, GEN_W7};

	if (GEN_WORDS < 1 || GEN_WORDS > 8 || data + 8 * GEN_WORDS > data_end)
		return XDP_ABORTED;
#pragma unroll
	for (int i = 0; i < GEN_WORDS; i++)
		*(__u64 *)(data + 8 * i) = words[i];
	if (GEN_FLOWS > 1 || GEN_SADDR_FLOWS > 1) {
		__u16 *sport = data + GEN_SPORT_OFF, *l4csum = data + GEN_L4_CSUM_OFF;
		__u16 *saddr_lo = data + GEN_SADDR_LO_OFF, *ipcsum = data + GEN_IP_CSUM_OFF;

		if ((void *)(l4csum + 1) > data_end || (void *)(sport + 1) > data_end)
			return XDP_ABORTED;
		if (GEN_FLOWS > 1)
			gen_bump(sport, bpf_get_prandom_u32() % GEN_FLOWS, l4csum, 0);
		if (GEN_SADDR_FLOWS > 1)
			gen_bump(saddr_lo, bpf_get_prandom_u32() % GEN_SADDR_FLOWS, l4csum, ipcsum);
	}
	if (GEN_DROP)
		return XDP_DROP;
	return bpf_redirect(GEN_IFINDEX, 0);
}
