/* SPDX-License-Identifier: GPL-2.0-or-later */
/* bng_uplink.bpf.c: pfrps-bng downstream fast path, XDP on the uplink (Internet) interface.
 *
 * An untagged IPv4 frame whose destination is a subscriber's address (bng_v4), or an IPv6
 * frame whose destination /64 is a subscriber's prefix (bng_v6), finds its session
 * (bng_sessions), has its TTL / hop limit decremented, and is PPPoE-encapsulated:
 * bpf_xdp_adjust_head(-(8 + 4 * tags)) and
 *
 *   dst = client MAC, src = session ac_mac, [outer_tpid outer_vid [0x8100 inner_vid]],
 *   0x8864 | 0x11 0x00 session_id, length = IP length + 2 | PPP 0x0021 / 0x0057 | IP
 *
 * then redirected to the access interface (bng_config.access_ifindex). Verdicts:
 *
 *   IP longer than the session's MRU (0 = 1492)        XDP_DROP  down_too_big (no ICMP: the
 *                                                       kernel does not know the MRU; TCP
 *                                                       MSS clamping is the control plane's)
 *   TTL / hop limit <= 1                                XDP_PASS  down_ttl (the kernel answers)
 *   destination of no session                           XDP_PASS  down_no_session
 *   IP header cut / version wrong / length past frame   XDP_PASS  down_malformed
 *   not IPv4/IPv6 (ARP, VLAN-tagged, ...)               XDP_PASS  down_other
 *   no headroom / no config                             XDP_DROP / XDP_PASS  down_error
 *   encapsulated                                        XDP_REDIRECT down_forwarded
 *
 * Per-session counters: each encapsulated packet counts in down_packets / down_bytes
 * (bytes = the IP packet's length). Ethernet padding after a short IP packet is carried
 * along (the PPPoE length says where the packet ends).
 *
 * Native XDP_REDIRECT into a veth delivers only when the veth's peer runs an XDP program
 * of its own (bpf/xdp_pass.bpf.c), which gives its receive queue the NAPI context the
 * redirect needs; generic mode has no such need. The access interface's MTU must allow the
 * encapsulated frame (IP + 8 + 4 per tag). Entry point: pfrps_bng_uplink. Layouts: bng.h.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#include "bng.h"
#include "xdp_parse.h"

static __always_inline int bng_verdict(__u32 stat, int action)
{
	bng_stat_add(bng_stats.lookup(&stat));
	return action;
}

/* The counters of session ``key``: its slot is its session id (host order). */
static __always_inline struct bng_counters *bng_counters_of(struct bng_key *key)
{
	__u32 slot = bpf_ntohs(key->session_id);

	return bng_counters.lookup(&slot);
}

static __always_inline void bng_count_down(struct bng_key *key, __u32 bytes)
{
	struct bng_counters *c = bng_counters_of(key);

	if (c) {
		c->down_packets++;
		c->down_bytes += bytes;
	}
}

int pfrps_bng_uplink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bng_key *kp, key;
	struct bng_session *sess;
	struct bng_config *cfg;
	__u16 ppp, mru, outer_tpid, inner_tpid;
	__u32 ip_len, tags, zero = 0, ifindex;
	__u8 ac_mac[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return bng_verdict(BNG_DOWN_OTHER, XDP_PASS);
	cfg = bng_config.lookup(&zero);
	if (!cfg || !cfg->access_ifindex)
		return bng_verdict(BNG_DOWN_ERROR, XDP_PASS);
	ifindex = cfg->access_ifindex;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = xdp_parse_ipv4(eth, data_end);
		__be32 dst;

		if (!iph)
			return bng_verdict(BNG_DOWN_MALFORMED, XDP_PASS);
		ip_len = bpf_ntohs(iph->tot_len);
		if (iph->version != 4 || iph->ihl < 5 || ip_len < iph->ihl * 4 || ip_len > BNG_MAX_LEN ||
		    (void *)iph + ip_len > data_end)
			return bng_verdict(BNG_DOWN_MALFORMED, XDP_PASS);
		dst = iph->daddr;
		kp = bng_v4.lookup(&dst);
		if (!kp)
			return bng_verdict(BNG_DOWN_NO_SESSION, XDP_PASS);
		key = *kp;
		sess = bng_sessions.lookup(&key);
		if (!sess || sess->ipv4 != dst)
			return bng_verdict(BNG_DOWN_NO_SESSION, XDP_PASS);
		mru = sess->mru ? sess->mru : BNG_DEFAULT_MRU;
		if (ip_len > mru)
			return bng_verdict(BNG_DOWN_TOO_BIG, XDP_DROP);
		if (iph->ttl <= 1)
			return bng_verdict(BNG_DOWN_TTL, XDP_PASS);
		xdp_ipv4_decrease_ttl(iph);
		ppp = BNG_PPP_IPV4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = xdp_parse_ipv6(eth, data_end);
		struct bng_prefix6 pfx;

		if (!ip6h)
			return bng_verdict(BNG_DOWN_MALFORMED, XDP_PASS);
		ip_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
		if (ip6h->version != 6 || ip_len > BNG_MAX_LEN || (void *)ip6h + ip_len > data_end)
			return bng_verdict(BNG_DOWN_MALFORMED, XDP_PASS);
		__builtin_memcpy(pfx.p, ip6h->daddr.s6_addr, sizeof(pfx.p));
		kp = bng_v6.lookup(&pfx);
		if (!kp)
			return bng_verdict(BNG_DOWN_NO_SESSION, XDP_PASS);
		key = *kp;
		sess = bng_sessions.lookup(&key);
		if (!sess || !bng_prefix_eq(sess->ipv6_prefix, pfx.p))
			return bng_verdict(BNG_DOWN_NO_SESSION, XDP_PASS);
		mru = sess->mru ? sess->mru : BNG_DEFAULT_MRU;
		if (ip_len > mru)
			return bng_verdict(BNG_DOWN_TOO_BIG, XDP_DROP);
		if (ip6h->hop_limit <= 1)
			return bng_verdict(BNG_DOWN_TTL, XDP_PASS);
		ip6h->hop_limit--;
		ppp = BNG_PPP_IPV6;
	} else {
		return bng_verdict(BNG_DOWN_OTHER, XDP_PASS);
	}

	outer_tpid = sess->outer_tpid;
	inner_tpid = outer_tpid ? sess->inner_tpid : 0;
	tags = (outer_tpid ? 1 : 0) + (inner_tpid ? 1 : 0);
	__builtin_memcpy(ac_mac, sess->ac_mac, ETH_ALEN);
	if (sess->access_ifindex)  /* several access ports: the session's own */
		ifindex = sess->access_ifindex;

	if (bpf_xdp_adjust_head(ctx, -(int)(BNG_PPPOE_OVERHEAD + tags * BNG_VLAN_HLEN)))
		return bng_verdict(BNG_DOWN_ERROR, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (bng_write_encap(data, data_end, &key, ac_mac, tags, outer_tpid, inner_tpid, ip_len, ppp))
		return bng_verdict(BNG_DOWN_ERROR, XDP_DROP);
	bng_count_down(&key, ip_len);
	return bng_verdict(BNG_DOWN_FORWARDED, bpf_redirect(ifindex, 0));
}
