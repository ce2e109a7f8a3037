/* SPDX-License-Identifier: GPL-2.0-or-later */
/* bng_access.bpf.c: pfrps-bng upstream fast path, XDP on the access (subscriber) interface.
 *
 * A PPPoE session frame (RFC 2516) carrying IPv4 (PPP 0x0021) or IPv6 (0x0057)
 *
 *   dst src [0x8100|0x88a8 tci [0x8100 tci]] 0x8864 | 0x11 0x00 sid len | proto | IP ...
 *
 * from a session in bng_sessions (key: source MAC, session id, VLAN ids; the frame's TPIDs
 * must equal the session's) whose source address is the session's (IPv4 address, IPv6 /64)
 * is decapsulated (bpf_xdp_adjust_head removes the tags, the PPPoE header and the PPP
 * protocol: 8 + 4 * tags bytes), routed with bpf_fib_lookup from the ingress interface,
 * its TTL / hop limit decremented, its MACs set from the FIB result and redirected to the
 * FIB's egress (normally the uplink). Verdicts (bng_stats slot):
 *
 *   source not the session's (no IPv4 assigned, other /64)  XDP_DROP  up_spoofed
 *   IPv6 link-local source or destination, multicast
 *     destination, ND (ICMPv6 133-137): the worker's RS/RA   XDP_PASS  up_to_stack (frame intact)
 *   PPP control (LCP, PAP, CHAP, IPCP, IPv6CP, ...)          XDP_PASS  up_to_stack (frame intact)
 *   unknown session (or other tag layout, or not to the
 *     session's ac_mac, or not on the session's port)        XDP_PASS  up_no_session (workers PADT)
 *   PPPoE discovery 0x8863                                   XDP_PASS  up_discovery
 *   not PPPoE, 3+ tags, runts                                XDP_PASS  up_other
 *   bad PPPoE ver/type/code, length past the frame, IP
 *     header cut or its length past the PPPoE payload        XDP_PASS  up_malformed (frame intact)
 *   TTL / hop limit <= 1                                     XDP_PASS  up_ttl       (decapsulated)
 *   FIB NO_NEIGH                                             XDP_PASS  up_no_neigh  (decapsulated)
 *   FIB FRAG_NEEDED (longer than the egress MTU)             XDP_PASS  up_frag_needed (decapsulated)
 *   to another subscriber's address                          XDP_TX    up_hairpin
 *     (the receiver on another access port)                  XDP_REDIRECT up_hairpin
 *   FIB anything else, or the egress is the access itself    XDP_DROP  up_no_route
 *   routed                                                   XDP_REDIRECT up_forwarded
 *
 * "Decapsulated" passes hand the kernel a plain Ethernet/IP frame, dst MAC = the access
 * interface's (bng_config.access_mac), src = the client's, TTL untouched, so the kernel
 * forwards it itself: it resolves the next hop (the first packet to a new neighbour goes
 * through the kernel; the following ones take the fast path once the neighbour is
 * reachable), fragments or sends ICMP Fragmentation Needed / Packet Too Big, or sends Time
 * Exceeded. Those ICMP errors go to the subscriber's address by the kernel's routes: they
 * reach the subscriber only if the control plane routes its pools so (XDP sees only
 * ingress frames; the kernel cannot PPPoE-encapsulate by itself).
 *
 * Subscriber to subscriber (the destination is in bng_v4 / bng_v6): TTL - 1, the
 * sender's tags and session header swapped for the receiver's (bpf_xdp_adjust_head by 4 per
 * tag of difference), XDP_TX back out of the access interface, or bpf_redirect to the
 * receiver's port when that is another access port (up_hairpin; longer than the
 * receiver's MRU: XDP_DROP, down_too_big); the receiver's down counters count it. Any other
 * destination the FIB routes through the access interface (a pool address with no session)
 * drops (up_no_route): the kernel could not encapsulate it.
 *
 * Per-session counters (bng_counters, made by user space with the session; only
 * incremented here): every IP packet that passed the source check, whatever the routing
 * outcome, counts in up_packets / up_bytes (bytes = the IP packet's own length).
 *
 * VLAN tags must reach XDP inline: on a NIC that strips them into the descriptor (rx VLAN
 * offload) the program sees untagged frames and no tagged session matches, so the access
 * NIC needs `ethtool -K <if> rxvlan off rx-vlan-stag-hw-parse off` (veth keeps tags inline).
 * PCP/DEI bits are not part of the key and are not restored downstream (TCI = VLAN id).
 *
 * bpf_fib_lookup (bpf-helpers(7)) needs forwarding enabled on the ingress interface
 * (net.ipv4.conf.<if>.forwarding, net.ipv6.conf.<if>.forwarding), else it answers
 * FWD_DISABLED (dropped, up_no_route). Entry point: pfrps_bng_access. Layouts: bng.h.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#include "bng.h"
#include "xdp_parse.h"

#define BNG_AF_INET 2
#define BNG_AF_INET6 10
#define BNG_IPV6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)
#define BNG_IPPROTO_ICMPV6 58

struct bng_vlan {
	__be16 tci;
	__be16 proto;
};

struct bng_pppoe {
	__u8 ver_type;
	__u8 code;
	__be16 sid;
	__be16 length;
	__be16 proto; /* the PPP protocol, first 2 bytes of the payload */
};

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

static __always_inline void bng_count_up(struct bng_key *key, __u32 bytes)
{
	struct bng_counters *c = bng_counters_of(key);

	if (c) {
		c->up_packets++;
		c->up_bytes += bytes;
	}
}

/* Remove tags + PPPoE + PPP protocol, leaving dst src ethertype | IP. Returns the new
 * Ethernet header (dst/src still to be written), or NULL when the head cannot move. */
static __always_inline struct ethhdr *bng_decap(struct xdp_md *ctx, __u32 tags, __u16 ethertype)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (bpf_xdp_adjust_head(ctx, (int)(tags * BNG_VLAN_HLEN + BNG_PPPOE_OVERHEAD)))
		return NULL;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	eth->h_proto = bpf_htons(ethertype);
	return eth;
}

/* Decapsulate and hand the plain frame to the kernel (dst = the access MAC; for a session of
 * another access port than bng_config's (port: its access_ifindex, 0 = bng_config's), the MAC
 * the frame was sent to: the session's AC MAC, checked before, which is that port's own). */
static __always_inline int bng_to_kernel(struct xdp_md *ctx, __u32 tags, __u16 ethertype,
					 const struct bng_key *key, const struct bng_config *cfg, __u32 port,
					 __u32 stat)
{
	struct ethhdr *in = (void *)(long)ctx->data;
	struct ethhdr *eth;
	__u8 dmac[ETH_ALEN];

	if ((void *)(in + 1) > (void *)(long)ctx->data_end)
		return bng_verdict(BNG_UP_ERROR, XDP_DROP);
	if (port && port != cfg->access_ifindex)
		__builtin_memcpy(dmac, in->h_dest, ETH_ALEN);
	else
		__builtin_memcpy(dmac, cfg->access_mac, ETH_ALEN);
	eth = bng_decap(ctx, tags, ethertype);
	if (!eth)
		return bng_verdict(BNG_UP_ERROR, XDP_DROP);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, key->mac, ETH_ALEN);
	return bng_verdict(stat, XDP_PASS);
}

/* 1 when an IPv6 packet from a subscriber is control-plane business (router
 * solicitations, neighbour discovery, MLD, anything link-local or multicast). */
static __always_inline int bng_v6_control(struct ipv6hdr *ip6h, void *data_end)
{
	const __u8 *s = ip6h->saddr.s6_addr;
	const __u8 *d = ip6h->daddr.s6_addr;

	if ((s[0] == 0xfe && (s[1] & 0xc0) == 0x80) || (d[0] == 0xfe && (d[1] & 0xc0) == 0x80))
		return 1;
	if (d[0] == 0xff)
		return 1;
	if (ip6h->nexthdr == BNG_IPPROTO_ICMPV6) {
		__u8 *type = (void *)(ip6h + 1);

		if ((void *)(type + 1) > data_end)
			return 0;
		if (*type >= 133 && *type <= 137)
			return 1;
	}
	return 0;
}

static __always_inline void bng_count_down(struct bng_key *key, __u32 bytes)
{
	struct bng_counters *c = bng_counters_of(key);

	if (c) {
		c->down_packets++;
		c->down_bytes += bytes;
	}
}

/* To another subscriber (dst of bng_v4 / bng_v6): TTL - 1, swap the session header for
 * the receiver's (tags may differ: the head moves by 4 per tag) and send it back out of the
 * access interface (XDP_TX), or redirect it to the receiver's port when that is another one
 * (its access_ifindex, 0 = ``primary``, bng_config's). The sender was counted up already;
 * the receiver counts down. */
static __always_inline int bng_hairpin(struct xdp_md *ctx, void *l3, void *data_end, __u32 tags,
				       __u16 ethertype, __u32 ip_len, struct bng_key *dkey,
				       struct bng_session *ds, __u32 primary)
{
	__u16 mru = ds->mru ? ds->mru : BNG_DEFAULT_MRU;
	__u16 outer_tpid = ds->outer_tpid, inner_tpid = outer_tpid ? ds->inner_tpid : 0;
	__u32 ntags = (outer_tpid ? 1 : 0) + (inner_tpid ? 1 : 0);
	__u8 ac_mac[ETH_ALEN];
	void *data;

	if (ip_len > mru)
		return bng_verdict(BNG_DOWN_TOO_BIG, XDP_DROP);
	if (ethertype == ETH_P_IP) {
		struct iphdr *iph = l3;

		if ((void *)(iph + 1) > data_end)
			return bng_verdict(BNG_UP_ERROR, XDP_DROP);
		xdp_ipv4_decrease_ttl(iph);
	} else {
		struct ipv6hdr *ip6h = l3;

		if ((void *)(ip6h + 1) > data_end)
			return bng_verdict(BNG_UP_ERROR, XDP_DROP);
		ip6h->hop_limit--;
	}
	__u32 oif = ds->access_ifindex ? ds->access_ifindex : primary;

	__builtin_memcpy(ac_mac, ds->ac_mac, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, ((int)tags - (int)ntags) * BNG_VLAN_HLEN))
		return bng_verdict(BNG_UP_ERROR, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (bng_write_encap(data, data_end, dkey, ac_mac, ntags, outer_tpid, inner_tpid, ip_len,
			    ethertype == ETH_P_IP ? BNG_PPP_IPV4 : BNG_PPP_IPV6))
		return bng_verdict(BNG_UP_ERROR, XDP_DROP);
	bng_count_down(dkey, ip_len);
	if (oif != ctx->ingress_ifindex)  /* the receiver is on another access port */
		return bng_verdict(BNG_UP_HAIRPIN, bpf_redirect(oif, 0));
	return bng_verdict(BNG_UP_HAIRPIN, XDP_TX);
}

int pfrps_bng_access(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bng_key key = {};
	struct bng_session *sess;
	struct bng_config *cfg;
	struct bng_pppoe *ph;
	struct bpf_fib_lookup fib = {};
	struct bng_key *dkp, dkey;
	struct bng_session *ds;
	struct bng_prefix6 pfx;
	__be32 daddr;
	__u16 tpid0 = 0, tpid1 = 0, proto, plen, ethertype;
	__u32 tags = 0, ip_len, zero = 0;
	void *l3;
	int rc;

	if ((void *)(eth + 1) > data_end)
		return bng_verdict(BNG_UP_OTHER, XDP_PASS);
	proto = bpf_ntohs(eth->h_proto);
	l3 = eth + 1;
	if (proto == BNG_ETH_P_8021Q || proto == BNG_ETH_P_8021AD) {
		struct bng_vlan *v = l3;

		if ((void *)(v + 1) > data_end)
			return bng_verdict(BNG_UP_OTHER, XDP_PASS);
		tpid0 = proto;
		key.outer_vid = bpf_ntohs(v->tci) & BNG_VID_MASK;
		proto = bpf_ntohs(v->proto);
		l3 = v + 1;
		tags = 1;
		if (proto == BNG_ETH_P_8021Q) {
			struct bng_vlan *w = l3;

			if ((void *)(w + 1) > data_end)
				return bng_verdict(BNG_UP_OTHER, XDP_PASS);
			tpid1 = proto;
			key.inner_vid = bpf_ntohs(w->tci) & BNG_VID_MASK;
			proto = bpf_ntohs(w->proto);
			l3 = w + 1;
			tags = 2;
		}
	}
	if (proto == BNG_ETH_P_PPP_DISC)
		return bng_verdict(BNG_UP_DISCOVERY, XDP_PASS);
	if (proto != BNG_ETH_P_PPP_SES)
		return bng_verdict(BNG_UP_OTHER, XDP_PASS);

	ph = l3;
	if ((void *)(ph + 1) > data_end)
		return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
	plen = bpf_ntohs(ph->length);
	/* The PPPoE payload (from the PPP protocol on) must fit the frame; Ethernet padding
	 * after it is fine. */
	if (ph->ver_type != BNG_PPPOE_VER_TYPE || ph->code != 0 || plen < 2 || plen > BNG_MAX_LEN ||
	    (void *)&ph->proto + plen > data_end)
		return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
	if (ph->proto == bpf_htons(BNG_PPP_IPV4))
		ethertype = ETH_P_IP;
	else if (ph->proto == bpf_htons(BNG_PPP_IPV6))
		ethertype = ETH_P_IPV6;
	else
		return bng_verdict(BNG_UP_TO_STACK, XDP_PASS);

	l3 = ph + 1;
	if (ethertype == ETH_P_IP) {
		struct iphdr *iph = l3;

		if ((void *)(iph + 1) > data_end)
			return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
		ip_len = bpf_ntohs(iph->tot_len);
		if (iph->version != 4 || iph->ihl < 5 || ip_len < iph->ihl * 4 || ip_len + 2 > plen)
			return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
	} else {
		struct ipv6hdr *ip6h = l3;

		if ((void *)(ip6h + 1) > data_end)
			return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
		ip_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
		if (ip6h->version != 6 || ip_len + 2 > plen)
			return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
	}

	__builtin_memcpy(key.mac, eth->h_source, ETH_ALEN);
	key.session_id = ph->sid;
	sess = bng_sessions.lookup(&key);
	if (!sess || sess->outer_tpid != tpid0 || sess->inner_tpid != tpid1 ||
	    !bng_mac_eq(eth->h_dest, sess->ac_mac))
		return bng_verdict(BNG_UP_NO_SESSION, XDP_PASS);
	cfg = bng_config.lookup(&zero);
	if (!cfg || !cfg->access_ifindex)
		return bng_verdict(BNG_UP_ERROR, XDP_PASS);
	/* Only on the session's own port; 0 is bng_config's (not "any port"). */
	if ((sess->access_ifindex ? sess->access_ifindex : cfg->access_ifindex) != ctx->ingress_ifindex)
		return bng_verdict(BNG_UP_NO_SESSION, XDP_PASS);

	/* Source check (anti-spoofing), then the routing question, on the frame as received. */
	if (ethertype == ETH_P_IP) {
		struct iphdr *iph = l3;

		if ((void *)(iph + 1) > data_end)
			return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
		if (sess->ipv4 == 0 || iph->saddr != sess->ipv4)
			return bng_verdict(BNG_UP_SPOOFED, XDP_DROP);
		bng_count_up(&key, ip_len);
		if (iph->ttl <= 1)
			return bng_to_kernel(ctx, tags, ethertype, &key, cfg, sess->access_ifindex, BNG_UP_TTL);
		daddr = iph->daddr;
		fib.family = BNG_AF_INET;
		fib.tos = iph->tos;
		fib.l4_protocol = iph->protocol;
		fib.tot_len = ip_len;
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = iph->daddr;
	} else {
		struct ipv6hdr *ip6h = l3;

		if ((void *)(ip6h + 1) > data_end)
			return bng_verdict(BNG_UP_MALFORMED, XDP_PASS);
		if (bng_v6_control(ip6h, data_end))
			return bng_verdict(BNG_UP_TO_STACK, XDP_PASS);
		if (bng_prefix_zero(sess->ipv6_prefix) ||
		    !bng_prefix_eq(ip6h->saddr.s6_addr, sess->ipv6_prefix))
			return bng_verdict(BNG_UP_SPOOFED, XDP_DROP);
		bng_count_up(&key, ip_len);
		if (ip6h->hop_limit <= 1)
			return bng_to_kernel(ctx, tags, ethertype, &key, cfg, sess->access_ifindex, BNG_UP_TTL);
		__builtin_memcpy(pfx.p, ip6h->daddr.s6_addr, sizeof(pfx.p));
		fib.family = BNG_AF_INET6;
		fib.flowinfo = *(__be32 *)ip6h & BNG_IPV6_FLOWINFO_MASK;
		fib.l4_protocol = ip6h->nexthdr;
		fib.tot_len = ip_len;
		__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	}
	fib.ifindex = ctx->ingress_ifindex;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	/* NO_NEIGH has the egress in fib.ifindex too: a pool routed through the access
	 * interface (another subscriber) has no neighbour there, and must not loop. Only then is
	 * the destination looked up among the sessions (hairpin), and when the FIB has no route
	 * at all: the common path, out of the uplink, pays no such lookup. */
	if (((rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) &&
	     fib.ifindex == cfg->access_ifindex) ||
	    (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
	     rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)) {  /* (no route at all: a session all the same?) */
		if (ethertype == ETH_P_IP) {
			dkp = bng_v4.lookup(&daddr);
			if (dkp) {
				dkey = *dkp;
				ds = bng_sessions.lookup(&dkey);
				if (ds && ds->ipv4 == daddr)
					return bng_hairpin(ctx, l3, data_end, tags, ethertype, ip_len, &dkey, ds,
							   cfg->access_ifindex);
			}
		} else {
			dkp = bng_v6.lookup(&pfx);
			if (dkp) {
				dkey = *dkp;
				ds = bng_sessions.lookup(&dkey);
				if (ds && bng_prefix_eq(ds->ipv6_prefix, pfx.p))
					return bng_hairpin(ctx, l3, data_end, tags, ethertype, ip_len, &dkey, ds,
							   cfg->access_ifindex);
			}
		}
		return bng_verdict(BNG_UP_NO_ROUTE, XDP_DROP);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bng_to_kernel(ctx, tags, ethertype, &key, cfg, sess->access_ifindex, BNG_UP_NO_NEIGH);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return bng_to_kernel(ctx, tags, ethertype, &key, cfg, sess->access_ifindex, BNG_UP_FRAG_NEEDED);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return bng_verdict(BNG_UP_NO_ROUTE, XDP_DROP);

	eth = bng_decap(ctx, tags, ethertype);
	if (!eth)
		return bng_verdict(BNG_UP_ERROR, XDP_DROP);
	data_end = (void *)(long)ctx->data_end;
	if (ethertype == ETH_P_IP) {
		struct iphdr *iph = xdp_parse_ipv4(eth, data_end);

		if (!iph)
			return bng_verdict(BNG_UP_ERROR, XDP_DROP);
		xdp_ipv4_decrease_ttl(iph);
	} else {
		struct ipv6hdr *ip6h = xdp_parse_ipv6(eth, data_end);

		if (!ip6h)
			return bng_verdict(BNG_UP_ERROR, XDP_DROP);
		ip6h->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bng_verdict(BNG_UP_FORWARDED, bpf_redirect(fib.ifindex, 0));
}
