/* SPDX-License-Identifier: GPL-2.0-or-later */
/* acl.h: the per-VM ACL of seed 003 (dsahern/bpf-progs acl_simple.h, reimplemented), one
 * source for both places it runs: the devmap program on redirect to a VM's port (traffic to
 * the VM, bpf/acl_vm.bpf.c without ACL_FROM_VM) and the VM port's receive side (traffic
 * from the VM: acl_vm_rx, and bpf/xdp_vmegress.bpf.c).
 *
 * Decision order (pfrps/xdp/acl.py `decide` is the Python reference, tested against this):
 *  1. the VM's vm_info MAC must be the frame's destination (to the VM) or source (from the
 *     VM: no spoofing); else drop;
 *  2. non-IP frames (ARP, ...) pass; malformed headers drop;
 *  3. look up the rule for {port ifindex, protocol, destination port} (port 0 for a protocol
 *     without ports and for IPv4 fragments), then the rule for {.., protocol, port 0};
 *  4. a rule matches when every field it gives matches: family, address (the peer's: source
 *     to the VM, destination from it; the all-zero address = any of that family), source
 *     port. The first matching rule drops the frame; none matching passes it.
 * Two changes from the seed's acl_simple, whose last line returns `key.port ? drop : pass`:
 * a rule without ports (proto=icmp, or proto=tcp alone) drops its protocol instead of never
 * dropping, and a rule with both dport and sport needs both to match.
 */
#ifndef PFRPS_ACL_H
#define PFRPS_ACL_H

#include "cloud.h"
#include "flow.h"

enum acl_verdict {
	ACL_KEEP = 0,
	ACL_DROP_MAC,
	ACL_DROP_RULE,
	ACL_DROP_MALFORMED,
};

static __always_inline int acl_addr_is_any(const __be32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

static __always_inline int acl_rule_matches(const struct acl_val *val, const struct flow *fl,
					    int from_vm)
{
	if ((val->family || (val->flags & ACL_FLAG_ADDR_CHECK)) && fl->family != val->family)
		return 0;
	if (val->flags & ACL_FLAG_ADDR_CHECK) {
		const __be32 *peer = from_vm ? fl->daddr.ipv6 : fl->saddr.ipv6;

		if (fl->family == FLOW_AF_INET) {
			if (val->addr.ipv4 && val->addr.ipv4 != peer[0])
				return 0;
		} else if (fl->family == FLOW_AF_INET6) {
			if (!acl_addr_is_any(val->addr.ipv6) &&
			    (val->addr.ipv6[0] != peer[0] || val->addr.ipv6[1] != peer[1] ||
			     val->addr.ipv6[2] != peer[2] || val->addr.ipv6[3] != peer[3]))
				return 0;
		} else {
			return 0;
		}
	}
	if (val->port && val->port != fl->ports.sport)
		return 0;
	return 1;
}

/* 1: a rule of acl_map for the VM on port `ifindex` drops this flow; 0: keep it. */
static __always_inline int acl_drops(const struct flow *fl, __u32 ifindex, int from_vm,
				     void *acl_map)
{
	struct acl_key key = {};
	struct acl_val *val;

	key.ifindex = ifindex;
	key.protocol = fl->protocol;
	if ((fl->protocol == FLOW_IPPROTO_TCP || fl->protocol == FLOW_IPPROTO_UDP) && !fl->fragment)
		key.port = fl->ports.dport;
	val = bpf_map_lookup_elem(acl_map, &key);
	if (val && acl_rule_matches(val, fl, from_vm))
		return 1;
	if (!key.port)
		return 0;
	key.port = 0;
	val = bpf_map_lookup_elem(acl_map, &key);
	return val && acl_rule_matches(val, fl, from_vm);
}

static __always_inline int acl_mac_eq(const __u8 *a, const __u8 *b)
{
	return *(__u32 *)a == *(__u32 *)b && *(__u16 *)(a + 4) == *(__u16 *)(b + 4);
}

/* The whole check for one frame of the VM `vi` on port `ifindex`: an enum acl_verdict.
 * fl is filled (the bond hash reuses it). */
static __always_inline int acl_vm_verdict(void *data, void *data_end, const struct vm_info *vi,
					  __u32 ifindex, int from_vm, struct flow *fl)
{
	struct flow_ethhdr *eth = data;
	int rc;

	if ((void *)(eth + 1) > data_end)
		return ACL_DROP_MALFORMED;
	if (!acl_mac_eq(vi->mac, from_vm ? eth->h_source : eth->h_dest))
		return ACL_DROP_MAC;
	rc = flow_parse(data, data_end, fl);
	if (rc)
		return rc > 0 ? ACL_KEEP : ACL_DROP_MALFORMED;
	return acl_drops(fl, ifindex, from_vm,
			 from_vm ? CLOUD_MAP(CLOUD_ACL_FROM_FD) : CLOUD_MAP(CLOUD_ACL_TO_FD))
		       ? ACL_DROP_RULE : ACL_KEEP;
}

#endif /* PFRPS_ACL_H */
