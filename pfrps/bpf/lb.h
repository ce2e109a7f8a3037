/* SPDX-License-Identifier: GPL-2.0-or-later */
/* lb.h: layouts of the XDP L4 load balancer (seed 002), shared by bpf/xdp_lb.bpf.c and
 * pfrps/xdp/lb.py.
 *
 * Python reads every layout from bcc's description of the maps compiled from this header
 * (Table.Key / Table.Leaf), so it never restates them by hand; the _Static_asserts below pin
 * the sizes at compile time, and tests/root/test_xdp_lb_verdicts.py checks the bytes.
 *
 * Maps (declared in xdp_lb.bpf.c):
 *   lb_cfg        ARRAY    [0] -> struct lb_cfg
 *   lb_ports      HASH     __u16 port (host order) -> __u8 1: the VIP's balanced ports
 *   lb_ring       ARRAY    LB_RING_SIZE x __u32 backend slot: the Maglev lookup table
 *   lb_backends   ARRAY    LB_MAX_BACKENDS x struct lb_backend (by slot)
 *   lb_backend_ips HASH    __be32 backend address -> __u32 slot
 *   lb_fwd_flows  LRU_HASH struct lb_flow_key (client -> VIP) -> struct lb_fwd
 *   lb_rev_flows  LRU_HASH struct lb_flow_key (backend -> VIP) -> struct lb_rev
 *   lb_stats      PERCPU_ARRAY LB_MAX_BACKENDS x struct lb_counter (by slot)
 *
 * Compile-time knobs (-D flags; the defaults below apply otherwise):
 *   LB_RING_SIZE     Maglev table size M, a prime (default 65537, katran's default)
 *   LB_MAX_BACKENDS  backend slots (default 256)
 *   LB_MAX_FLOWS     entries of each flow table (default 65536)
 *   LB_HASH_SEED     initval of the flow hash (default 0)
 *   LB_NAT_TRIES     source ports tried when the client's port is taken (default 8)
 */
#ifndef PFRPS_LB_H
#define PFRPS_LB_H

#include "pfrps_hash.h"

#ifndef LB_RING_SIZE
#define LB_RING_SIZE 65537
#endif
#ifndef LB_MAX_BACKENDS
#define LB_MAX_BACKENDS 256
#endif
#ifndef LB_MAX_FLOWS
#define LB_MAX_FLOWS 65536
#endif
#ifndef LB_HASH_SEED
#define LB_HASH_SEED 0
#endif
#ifndef LB_NAT_TRIES
#define LB_NAT_TRIES 8
#endif

/* First NAT source port tried after the client's own (ports below stay the client's). */
#define LB_NAT_PORT_MIN 1024

struct lb_cfg {
	__be32 vip;          /* the virtual IP, network order: an address of the LB's interface */
	__u32 all_ports;     /* 1: every TCP/UDP port of the VIP is balanced; 0: lb_ports only */
	__u32 n_backends;    /* 0: new flows pass to the LB's own stack */
	__u8 mac[6];         /* the LB interface's MAC: frames to another address pass */
	__u16 pad;
};

struct lb_backend {
	__be32 ip;           /* network order */
	__u8 mac[6];
	__u16 pad;
};

/* A flow as it arrives: addresses and ports in network order, proto IPPROTO_TCP/UDP. */
struct lb_flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* client -> VIP: rewrite to VIP:nat_port -> backend:dport. */
struct lb_fwd {
	__be32 backend_ip;
	__u8 backend_mac[6];
	__be16 nat_port;     /* the source port the backend sees */
	__u32 slot;          /* counters index */
	__u32 pad;
};

/* backend -> VIP:nat_port: rewrite to VIP:sport -> client:client_port. */
struct lb_rev {
	__be32 client_ip;
	__u8 client_mac[6];
	__be16 client_port;
	__u32 slot;
	__u32 pad;
};

/* Per backend slot (per CPU; user space sums): client->backend and backend->client frames
 * and bytes (whole frames as XDP sees them). */
struct lb_counter {
	__u64 to_backend_packets;
	__u64 to_backend_bytes;
	__u64 to_client_packets;
	__u64 to_client_bytes;
};

_Static_assert(sizeof(struct lb_cfg) == 20, "struct lb_cfg layout");
_Static_assert(sizeof(struct lb_backend) == 12, "struct lb_backend layout");
_Static_assert(sizeof(struct lb_flow_key) == 16, "struct lb_flow_key layout");
_Static_assert(sizeof(struct lb_fwd) == 20, "struct lb_fwd layout");
_Static_assert(sizeof(struct lb_rev) == 20, "struct lb_rev layout");
_Static_assert(sizeof(struct lb_counter) == 32, "struct lb_counter layout");

/* The flow hash that picks a new flow's Maglev slot: the kernel's jhash_3words(a, b, c,
 * initval) (include/linux/jhash.h) of the source address, the destination address and the
 * two ports, each word as the packet's 4 bytes read by a little-endian load (x86), with
 * initval LB_HASH_SEED + proto. pfrps/xdp/maglev.py:flow_hash is its reference. */
static __always_inline __u32 lb_flow_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport,
					  __u8 proto)
{
	__u32 a = saddr, b = daddr, c = (__u32)sport | ((__u32)dport << 16);
	__u32 iv = (__u32)LB_HASH_SEED + proto + 0xdeadbeef + (3 << 2);

	a += iv;
	b += iv;
	c += iv;
	return pfrps_jhash_final(a, b, c);
}

#endif /* PFRPS_LB_H */
