/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_lb.bpf.c: the seed 002 L4 load balancer, full NAT with XDP_TX on the LB's one interface.
 *
 * client C:cp -> VIP:vp      becomes  VIP:np -> B:vp   (np = cp unless another client holds it)
 * backend B:vp -> VIP:np     becomes  VIP:vp -> C:cp
 *
 * MACs: the source becomes the LB's, the destination the backend's (from user space) or the
 * client's (recorded from the client's frame). IPv4 and TCP/UDP checksums are updated with
 * bpf_csum_diff (bpf-helpers(7)) over the words that changed (RFC 1624 incremental update).
 * A new flow picks its backend through the Maglev table (lb_ring[hash % LB_RING_SIZE], as
 * katran does) and is recorded in both directions (lb_fwd_flows, lb_rev_flows, LRU hashes), so
 * replies find their client and a connection keeps its backend when the backend set changes.
 * Everything else (ARP, ICMP to the VIP, other addresses and ports, fragments, IP options
 * the frame is too short for) passes to the LB's own stack. Layouts and knobs: lb.h.
 * Entry point: pfrps_xdp_lb.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>

#include "lb.h"
#include "xdp_stats.h"

BPF_ARRAY(lb_cfg, struct lb_cfg, 1);
BPF_HASH(lb_ports, __u16, __u8, 1024);
BPF_ARRAY(lb_ring, __u32, LB_RING_SIZE);
BPF_ARRAY(lb_backends, struct lb_backend, LB_MAX_BACKENDS);
BPF_HASH(lb_backend_ips, __be32, __u32, LB_MAX_BACKENDS);
BPF_TABLE("lru_hash", struct lb_flow_key, struct lb_fwd, lb_fwd_flows, LB_MAX_FLOWS);
BPF_TABLE("lru_hash", struct lb_flow_key, struct lb_rev, lb_rev_flows, LB_MAX_FLOWS);
BPF_PERCPU_ARRAY(lb_stats, struct lb_counter, LB_MAX_BACKENDS);

/* The seed's helper (xdp_stats.h: bcc rewrites map calls only in the main file). */
static __always_inline __u32 stats_record_action(struct xdp_md *ctx, __u32 action)
{
	return stats_count(xdp_stats_map.lookup(&action), action, ctx->data_end - ctx->data);
}

#define LB_IP_MF 0x2000
#define LB_IP_OFFSET 0x1fff

static __always_inline __u16 lb_csum_fold(__s64 sum)
{
	__u64 csum = (__u64)sum & 0xffffffff;

	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* The checksum *check after the 32-bit words old[0..n) became new[0..n): RFC 1624 eqn. 3,
 * HC' = ~(~HC + ~m + m'), with the sum over the words done by bpf_csum_diff. */
static __always_inline __u16 lb_csum_replace(__u16 check, __be32 *old, __be32 *new, __u32 bytes)
{
	return lb_csum_fold(bpf_csum_diff(old, bytes, new, bytes, (__u16)~check));
}

/* Rewrite addresses and ports of an IPv4 TCP/UDP packet and fix both checksums.
 * l4check: the TCP/UDP checksum field; udp: 1 for UDP (0 = no checksum stays 0). */
static __always_inline void lb_rewrite(struct iphdr *iph, struct udphdr *ports, __u16 *l4check, int udp,
				       __be32 saddr, __be32 daddr, __be16 sport, __be16 dport)
{
	__be32 old[3], new[3];

	old[0] = iph->saddr;
	old[1] = iph->daddr;
	old[2] = ((__u32)ports->source) | ((__u32)ports->dest << 16);
	new[0] = saddr;
	new[1] = daddr;
	new[2] = ((__u32)sport) | ((__u32)dport << 16);

	iph->check = lb_csum_replace(iph->check, old, new, 8);
	if (!udp || *l4check) {
		__u16 c = lb_csum_replace(*l4check, old, new, 12);

		if (udp && c == 0)
			c = 0xffff; /* RFC 768: a computed 0 is sent as all ones */
		*l4check = c;
	}
	iph->saddr = saddr;
	iph->daddr = daddr;
	ports->source = sport;
	ports->dest = dport;
}

static __always_inline void lb_set_macs(struct ethhdr *eth, const __u8 *dst, const __u8 *src)
{
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
}

static __always_inline void lb_count(__u32 slot, int to_backend, __u64 bytes)
{
	struct lb_counter *c = lb_stats.lookup(&slot);

	if (!c)
		return;
	if (to_backend) {
		c->to_backend_packets++;
		c->to_backend_bytes += bytes;
	} else {
		c->to_client_packets++;
		c->to_client_bytes += bytes;
	}
}

static __always_inline int lb_mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5])) == 0;
}

/* A new flow: pick the backend by Maglev, choose the NAT source port, record both
 * directions. Returns 0 and fills *fwd, or -1 (no backend, or no free NAT port). */
static __always_inline int lb_new_flow(const struct lb_cfg *cfg, const struct lb_flow_key *key,
				       const __u8 *client_mac, struct lb_fwd *fwd)
{
	__u32 hash = lb_flow_hash(key->saddr, key->daddr, key->sport, key->dport, key->proto);
	__u32 idx = hash % LB_RING_SIZE;
	__u32 *slotp, slot;
	struct lb_backend *be;
	struct lb_flow_key rkey = {};
	struct lb_rev rev = {};

	if (cfg->n_backends == 0)
		return -1;
	slotp = lb_ring.lookup(&idx);
	if (!slotp)
		return -1;
	slot = *slotp;
	be = lb_backends.lookup(&slot);
	if (!be || be->ip == 0)
		return -1;

	rkey.saddr = be->ip;
	rkey.daddr = cfg->vip;
	rkey.sport = key->dport;
	rkey.proto = key->proto;
	rev.client_ip = key->saddr;
	__builtin_memcpy(rev.client_mac, client_mac, ETH_ALEN);
	rev.client_port = key->sport;
	rev.slot = slot;

	/* Find a NAT source port free for this backend: the client's own, else LB_NAT_TRIES - 1
	 * hash-derived ones. Only lookups in the loop, one update after it (a function-pointer
	 * call hoisted out of an unrolled loop becomes a callx, which the verifier refuses). */
	__u32 found = 0;
#pragma unroll
	for (int i = 0; i < LB_NAT_TRIES; i++) {
		struct lb_rev *held;

		if (found)
			break;
		if (i == 0)
			rkey.dport = key->sport;
		else
			rkey.dport = bpf_htons(LB_NAT_PORT_MIN +
					       (hash + i * 7919u) % (65536 - LB_NAT_PORT_MIN));
		held = lb_rev_flows.lookup(&rkey);
		if (!held || (held->client_ip == key->saddr && held->client_port == key->sport))
			found = 1;
	}
	if (!found || lb_rev_flows.update(&rkey, &rev) != 0)
		return -1;
	fwd->backend_ip = be->ip;
	__builtin_memcpy(fwd->backend_mac, be->mac, ETH_ALEN);
	fwd->nat_port = rkey.dport;
	fwd->slot = slot;
	fwd->pad = 0;
	if (lb_fwd_flows.update(key, fwd) != 0)
		return -1;
	return 0;
}

static __always_inline int lb_verdict(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct udphdr *ports;
	__u16 *l4check;
	struct lb_cfg *cfg;
	struct lb_flow_key key = {};
	struct lb_fwd *fwdp, fwd;
	struct lb_rev *rev;
	__u32 zero = 0, hlen;
	int udp;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || iph->version != 4 || iph->ihl < 5)
		return XDP_PASS;
	cfg = lb_cfg.lookup(&zero);
	if (!cfg || iph->daddr != cfg->vip || !lb_mac_eq(eth->h_dest, cfg->mac))
		return XDP_PASS;
	if (iph->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET))
		return XDP_PASS; /* fragments: no ports to hash */
	if (iph->protocol == IPPROTO_TCP)
		udp = 0;
	else if (iph->protocol == IPPROTO_UDP)
		udp = 1;
	else
		return XDP_PASS; /* ICMP and the rest: the LB's stack */

	hlen = iph->ihl * 4;
	if (hlen > 60)
		return XDP_PASS;
	ports = (void *)iph + hlen;
	if (udp) {
		if ((void *)ports + sizeof(struct udphdr) > data_end)
			return XDP_PASS;
		l4check = &ports->check;
	} else {
		struct tcphdr *tcp = (void *)ports;

		if ((void *)(tcp + 1) > data_end)
			return XDP_PASS;
		l4check = (__u16 *)&tcp->check;
	}

	key.saddr = iph->saddr;
	key.daddr = iph->daddr;
	key.sport = ports->source;
	key.dport = ports->dest;
	key.proto = iph->protocol;

	/* A backend's reply: back to its client, from the VIP. */
	rev = lb_rev_flows.lookup(&key);
	if (rev) {
		__u8 cmac[ETH_ALEN];

		__builtin_memcpy(cmac, rev->client_mac, ETH_ALEN);
		lb_count(rev->slot, 0, bytes);
		lb_rewrite(iph, ports, l4check, udp, cfg->vip, rev->client_ip, key.sport, rev->client_port);
		lb_set_macs(eth, cmac, cfg->mac);
		return XDP_TX;
	}

	/* A client's packet: to the flow's backend, from the VIP. */
	fwdp = lb_fwd_flows.lookup(&key);
	if (fwdp) {
		fwd = *fwdp;
	} else {
		__u16 port = bpf_ntohs(key.dport);
		__u8 client_mac[ETH_ALEN];

		if (lb_backend_ips.lookup(&key.saddr))
			return XDP_PASS; /* a backend's own traffic */
		if (!cfg->all_ports && !lb_ports.lookup(&port))
			return XDP_PASS;
		__builtin_memcpy(client_mac, eth->h_source, ETH_ALEN);
		if (lb_new_flow(cfg, &key, client_mac, &fwd) != 0)
			return cfg->n_backends ? XDP_DROP : XDP_PASS;
	}
	lb_count(fwd.slot, 1, bytes);
	lb_rewrite(iph, ports, l4check, udp, cfg->vip, fwd.backend_ip, fwd.nat_port, key.dport);
	lb_set_macs(eth, fwd.backend_mac, cfg->mac);
	return XDP_TX;
}

int pfrps_xdp_lb(struct xdp_md *ctx)
{
	return stats_record_action(ctx, lb_verdict(ctx));
}
