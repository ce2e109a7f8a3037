/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_vmegress.bpf.c: frames from a VM, on its port's receive side (seed 003:
 * dsahern/bpf-progs xdp_vmegress).
 *
 * The VM is found by the ingress ifindex (no vm_info: pass); the from-VM ACL of bpf/acl.h
 * runs (spoofed source MAC or a denied flow: drop); broadcast passes to the stack; the VM's
 * 802.1Q tag is pushed when it has one; the frame is redirected to the uplink the bond hash
 * picks (bond_hash below, entries 0..CLOUD_N_UPLINKS-1 of the uplink DEVMAP: the uplinks
 * are options, where the seed hard-codes ifindexes 2 and 3).
 */
#include <uapi/linux/bpf.h>

#include "acl.h"

/* The bonding driver's layer3+4 transmit hash (drivers/net/bonding/bond_main.c, as the seed
 * replicates it): the four port (or ICMP type/code/id) bytes as a u32, xor the addresses
 * (IPv6: each address folded by xor of its words), folded, halved; leg = hash % legs.
 * pfrps/xdp/cloud_maps.py bond_hash is the Python reference. */
static __always_inline __u32 bond_hash(const struct flow *fl)
{
	__u32 hash;

	__builtin_memcpy(&hash, &fl->ports, sizeof(hash));
	if (fl->family == FLOW_AF_INET) {
		hash ^= fl->daddr.ipv4 ^ fl->saddr.ipv4;
	} else if (fl->family == FLOW_AF_INET6) {
		hash ^= fl->daddr.ipv6[0] ^ fl->daddr.ipv6[1] ^ fl->daddr.ipv6[2] ^ fl->daddr.ipv6[3];
		hash ^= fl->saddr.ipv6[0] ^ fl->saddr.ipv6[1] ^ fl->saddr.ipv6[2] ^ fl->saddr.ipv6[3];
	}
	hash ^= hash >> 16;
	hash ^= hash >> 8;
	return hash >> 1;
}

/* Insert an 802.1Q tag with `tci` (network order) after the MAC addresses. 0 or -1. */
static __always_inline int vlan_push(struct xdp_md *ctx, __be16 tci)
{
	struct flow_ethhdr *eth, *old;
	struct flow_vlan_hdr *vh;
	void *data, *data_end;
	__be16 proto;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*vh)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	old = data + sizeof(*vh);
	vh = (void *)(eth + 1);
	if ((void *)(old + 1) > data_end)
		return -1;
	proto = old->h_proto;
	__builtin_memmove(eth, old, 2 * CLOUD_ETH_ALEN);
	eth->h_proto = bpf_htons(FLOW_ETH_P_8021Q);
	vh->tci = tci;
	vh->encapsulated_proto = proto;
	return 0;
}

int xdp_vmegress(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u32 ifindex = ctx->ingress_ifindex;
	struct flow_ethhdr *eth = data;
	struct flow fl = {};
	struct vm_info *vi;
	__u32 leg;
	long rc;
	int v;

	vi = bpf_map_lookup_elem(CLOUD_MAP(CLOUD_VM_FD), &ifindex);
	if (!vi)
		return XDP_PASS;
	v = acl_vm_verdict(data, data_end, vi, ifindex, 1, &fl);
	if (v != ACL_KEEP) {
		cloud_count(v == ACL_DROP_MAC ? CLOUD_FROM_VM_SPOOF_DROP :
			    v == ACL_DROP_RULE ? CLOUD_FROM_VM_ACL_DROP : CLOUD_MALFORMED);
		return XDP_DROP;
	}
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	/* broadcast and multicast (ARP, ND) go to the stack */
	if (eth->h_dest[0] & 1) {
		cloud_count(CLOUD_EGRESS_BCAST);
		return XDP_PASS;
	}
	leg = bond_hash(&fl) % CLOUD_N_UPLINKS;
	if (vi->vlan_TCI && vlan_push(ctx, vi->vlan_TCI) < 0)
		return XDP_PASS;
	rc = bpf_redirect_map(CLOUD_MAP(CLOUD_UPLINKS_FD), leg, XDP_PASS);
	cloud_count(rc == XDP_REDIRECT ? CLOUD_EGRESS_REDIRECT : CLOUD_FROM_VM_PASS);
	return rc;
}
