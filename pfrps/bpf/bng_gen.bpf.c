/* SPDX-License-Identifier: GPL-2.0-or-later */
/* bng_gen.bpf.c: bench/bng.py's traffic source and PPPoE-aware receiver for the pfrps-bng
 * data plane (bpf/bng_access.bpf.c, bpf/bng_uplink.bpf.c) and the kernel reference.
 *
 * bng_gen: the live-frame generator (run by BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES, as bpf/xdp_l2fwd_gen.bpf.c) for many sessions. That generator
 * writes one fixed template and varies only a UDP source port at the offset of an untagged
 * IPv4 header, so it cannot make PPPoE session frames of many sessions (source MAC, session
 * id, IPv4 source and header checksum all differ) nor count frames per session. This one
 * holds one template per session in gen_tmpl (GEN_SESSIONS entries of the first
 * 8 * GEN_WORDS bytes of the frame, written by user space), takes them in turn (round robin,
 * gen_next, per CPU), writes the template over the frame's first 8 * GEN_WORDS bytes (live
 * mode recycles pages without copying the data again, and the program under test rewrites
 * headers: the BNG decapsulates / encapsulates, the kernel rewrites MACs and the TTL), counts
 * the frame in gen_sent[session] (per CPU) and redirects it to GEN_IFINDEX (a veth of the
 * caller's namespace; its peer receives xdp_frames, as from a NIC). Every template must be as
 * long as the frame given to the test run (user space checks); GEN_WORDS 1 to 8 (default 7:
 * 56 bytes, Ethernet + PPPoE + PPP + IPv4 + UDP headers).
 *
 * bng_sink: the receiver on the subscribers' veth. XDP_DROP (counted in sink_stats[0]) of
 * IPv4 UDP datagrams to port SINK_UDP_DPORT (default 9), plain Ethernet/IPv4 (the kernel's
 * forwarding) or inside a PPPoE session frame (0x8864, PPP 0x0021: the BNG's encapsulation);
 * everything else passes (sink_stats[1]): LCP echoes and discovery still reach the client's
 * socket. One program for both, so the receiver costs the same (one more compare for the plain
 * frames) whichever router delivered the datagram. bpf/xdp_sink.bpf.c does the same for plain
 * frames only.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>

#ifndef GEN_IFINDEX
#define GEN_IFINDEX 0
#endif
#ifndef GEN_WORDS
#define GEN_WORDS 7
#endif
#ifndef GEN_SESSIONS
#define GEN_SESSIONS 1
#endif
#ifndef SINK_UDP_DPORT
#define SINK_UDP_DPORT 9
#endif

struct gen_tmpl {
	__u64 w[GEN_WORDS];
};

BPF_ARRAY(gen_tmpl, struct gen_tmpl, GEN_SESSIONS);
BPF_PERCPU_ARRAY(gen_sent, __u64, GEN_SESSIONS);
BPF_PERCPU_ARRAY(gen_next, __u32, 1);
BPF_PERCPU_ARRAY(sink_stats, __u64, 2);

int bng_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, i;
	__u32 *next;
	struct gen_tmpl *t;
	__u64 *sent;

	if (GEN_WORDS < 1 || GEN_WORDS > 8 || data + 8 * GEN_WORDS > data_end)
		return XDP_ABORTED;
	next = gen_next.lookup(&zero);
	if (!next)
		return XDP_ABORTED;
	i = *next;
	*next = i + 1 >= GEN_SESSIONS ? 0 : i + 1;
	t = gen_tmpl.lookup(&i);
	if (!t)
		return XDP_ABORTED;
#pragma unroll
	for (int k = 0; k < GEN_WORDS; k++)
		*(__u64 *)(data + 8 * k) = t->w[k];
	sent = gen_sent.lookup(&i);
	if (sent)
		*sent += 1;
	return bpf_redirect(GEN_IFINDEX, 0);
}

static __always_inline int sink_count(__u32 slot, int action)
{
	__u64 *c = sink_stats.lookup(&slot);

	if (c)
		*c += 1;
	return action;
}

int bng_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct udphdr *udph;
	__u8 *l3;

	if ((void *)(eth + 1) > data_end)
		return sink_count(1, XDP_PASS);
	l3 = (void *)(eth + 1);
	if (eth->h_proto == bpf_htons(0x8864)) {
		/* ver/type code | session id | length | PPP protocol */
		if ((void *)(l3 + 8) > data_end || *(__be16 *)(l3 + 6) != bpf_htons(0x0021))
			return sink_count(1, XDP_PASS);
		l3 += 8;
	} else if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		return sink_count(1, XDP_PASS);
	}
	iph = (void *)l3;
	if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_UDP || iph->ihl != 5 ||
	    (iph->frag_off & bpf_htons(0x1fff)))
		return sink_count(1, XDP_PASS);
	udph = (void *)(iph + 1);
	if ((void *)(udph + 1) > data_end || udph->dest != bpf_htons(SINK_UDP_DPORT))
		return sink_count(1, XDP_PASS);
	return sink_count(0, XDP_DROP);
}
