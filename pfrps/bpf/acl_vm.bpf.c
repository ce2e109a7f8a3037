/* SPDX-License-Identifier: GPL-2.0-or-later */
/* acl_vm.bpf.c: the per-VM ACL (seed 003: acl_vm_tx / acl_vm_rx), one source compiled twice.
 *
 * Without ACL_FROM_VM: acl_vm_tx, a devmap program (BPF_XDP_DEVMAP) in the port map's value
 * of a VM's port: it runs on every frame redirected there and looks the VM up by the egress
 * ifindex. With -DACL_FROM_VM=1: acl_vm_rx, an XDP program on the VM port's receive side
 * (frames from the VM), looked up by the ingress ifindex. The checks are bpf/acl.h's.
 * A port with no vm_info entry passes everything (not a VM this host manages).
 */
#include <uapi/linux/bpf.h>

#include "acl.h"

#ifndef ACL_FROM_VM
#define ACL_FROM_VM 0
#endif

static __always_inline int acl_vm(struct xdp_md *ctx, __u32 ifindex)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct flow fl = {};
	struct vm_info *vi;
	int v;

	vi = bpf_map_lookup_elem(CLOUD_MAP(CLOUD_VM_FD), &ifindex);
	if (!vi)
		return XDP_PASS;
	v = acl_vm_verdict(data, data_end, vi, ifindex, ACL_FROM_VM, &fl);
	if (v == ACL_KEEP) {
		cloud_count(ACL_FROM_VM ? CLOUD_FROM_VM_PASS : CLOUD_TO_VM_PASS);
		return XDP_PASS;
	}
	if (v == ACL_DROP_MAC)
		cloud_count(ACL_FROM_VM ? CLOUD_FROM_VM_SPOOF_DROP : CLOUD_TO_VM_MAC_DROP);
	else if (v == ACL_DROP_RULE)
		cloud_count(ACL_FROM_VM ? CLOUD_FROM_VM_ACL_DROP : CLOUD_TO_VM_ACL_DROP);
	else
		cloud_count(CLOUD_MALFORMED);
	return XDP_DROP;
}

#if ACL_FROM_VM
int acl_vm_rx(struct xdp_md *ctx)
{
	return acl_vm(ctx, ctx->ingress_ifindex);
}
#else
int acl_vm_tx(struct xdp_md *ctx)
{
	return acl_vm(ctx, ctx->egress_ifindex);
}
#endif
