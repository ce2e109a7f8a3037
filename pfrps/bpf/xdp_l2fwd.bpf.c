/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xdp_l2fwd.bpf.c: L2 forwarding on a host's uplink (seed 003: dsahern/bpf-progs xdp_l2fwd).
 *
 * A frame with an 802.1Q tag whose {destination MAC, VLAN id} is in the FDB (HASH, value:
 * the port's ifindex) loses its tag and is redirected through the port map (DEVMAP_HASH
 * keyed by ifindex; its value's devmap program, the VM's ACL, runs on the way). Untagged
 * frames, VLAN 0, FDB misses and ports missing from the port map pass to the stack (tag kept);
 * frames cut short inside the Ethernet header or the tag are dropped. Counters: bpf/cloud.h.
 */
#include <uapi/linux/bpf.h>

#include "cloud.h"
#include "flow.h"

int xdp_l2fwd(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct flow_ethhdr *eth = data;
	struct flow_vlan_hdr *vh;
	struct fdb_key key = {};
	__u8 smac[CLOUD_ETH_ALEN];
	__be16 inner;
	__u32 *port;
	long rc;

	if ((void *)(eth + 1) > data_end) {
		cloud_count(CLOUD_MALFORMED);
		return XDP_DROP;
	}
	if (eth->h_proto != bpf_htons(FLOW_ETH_P_8021Q)) {
		cloud_count(CLOUD_L2FWD_UNTAGGED);
		return XDP_PASS;
	}
	vh = (void *)(eth + 1);
	if ((void *)(vh + 1) > data_end) {
		cloud_count(CLOUD_MALFORMED);
		return XDP_DROP;
	}
	key.vlan = bpf_ntohs(vh->tci) & FLOW_VLAN_VID_MASK;
	__builtin_memcpy(key.mac, eth->h_dest, CLOUD_ETH_ALEN);
	port = key.vlan ? bpf_map_lookup_elem(CLOUD_MAP(CLOUD_FDB_FD), &key) : 0;
	/* no FDB entry, or a port not (or no longer) in the port map: the stack, still tagged */
	if (!port || !*port || !bpf_map_lookup_elem(CLOUD_MAP(CLOUD_PORTS_FD), port)) {
		cloud_count(CLOUD_L2FWD_NO_FDB);
		return XDP_PASS;
	}

	/* pop the tag: move the addresses 4 bytes on, then drop the first 4 bytes */
	inner = vh->encapsulated_proto;
	__builtin_memcpy(smac, eth->h_source, CLOUD_ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*vh)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		cloud_count(CLOUD_MALFORMED);
		return XDP_DROP;
	}
	__builtin_memcpy(eth->h_dest, key.mac, CLOUD_ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, CLOUD_ETH_ALEN);
	eth->h_proto = inner;

	/* XDP_PASS in the flags' low bits: the verdict should the entry vanish meanwhile */
	rc = bpf_redirect_map(CLOUD_MAP(CLOUD_PORTS_FD), *port, XDP_PASS);
	if (rc == XDP_REDIRECT)
		cloud_count(CLOUD_L2FWD_REDIRECT);
	else
		cloud_count(CLOUD_L2FWD_NO_FDB);
	return rc;
}
