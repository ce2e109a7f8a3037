/* SPDX-License-Identifier: GPL-2.0-or-later */
/* cloud.h: map layouts of the cloud-host programs (seed 003), shared by C and Python.
 *
 * pfrps/xdp/cloud_maps.py packs the same layouts with struct and checks their sizes against
 * the _Static_asserts below. Every map is created by Python (bpf(BPF_MAP_CREATE)), pinned in
 * the instance's directory of /sys/fs/bpf, and referenced here through its fd, passed in as a
 * -D knob (bcc cannot declare a DEVMAP_HASH, and one set of maps serves every program):
 *
 *   CLOUD_FDB_FD       HASH        struct fdb_key -> __u32 ifindex (a key of the port map)
 *   CLOUD_PORTS_FD     DEVMAP_HASH __u32 ifindex  -> struct bpf_devmap_val (ifindex, ACL prog)
 *   CLOUD_VM_FD        HASH        __u32 ifindex of the VM's port -> struct vm_info
 *   CLOUD_ACL_TO_FD    HASH        struct acl_key -> struct acl_val (traffic to a VM)
 *   CLOUD_ACL_FROM_FD  HASH        struct acl_key -> struct acl_val (traffic from a VM)
 *   CLOUD_UPLINKS_FD   DEVMAP      __u32 index 0..CLOUD_N_UPLINKS-1 -> __u32 uplink ifindex
 *   CLOUD_STATS_FD     PERCPU_ARRAY __u32 counter (enum cloud_counter) -> __u64 frames
 *
 * The seed (dsahern/bpf-progs) loads one ACL program per VM with a one-entry vm_info map;
 * here vm_info and the ACL keys carry the VM port's ifindex, so one load serves every VM.
 */
#ifndef PFRPS_CLOUD_H
#define PFRPS_CLOUD_H

#ifndef CLOUD_FDB_FD
#define CLOUD_FDB_FD -1
#endif
#ifndef CLOUD_PORTS_FD
#define CLOUD_PORTS_FD -1
#endif
#ifndef CLOUD_VM_FD
#define CLOUD_VM_FD -1
#endif
#ifndef CLOUD_ACL_TO_FD
#define CLOUD_ACL_TO_FD -1
#endif
#ifndef CLOUD_ACL_FROM_FD
#define CLOUD_ACL_FROM_FD -1
#endif
#ifndef CLOUD_UPLINKS_FD
#define CLOUD_UPLINKS_FD -1
#endif
#ifndef CLOUD_STATS_FD
#define CLOUD_STATS_FD -1
#endif
/* Uplinks the bond hash chooses from (vmegress): entries 0..N-1 of the uplink map. */
#ifndef CLOUD_N_UPLINKS
#define CLOUD_N_UPLINKS 2
#endif

/* A map made by user space, by fd (BPF_PSEUDO_MAP_FD), as bcc does for its own maps. */
#define CLOUD_MAP(fd) ((void *)bpf_pseudo_fd(1, fd))

#define CLOUD_ETH_ALEN 6

/* FDB key: destination MAC and the VLAN id (12 bits, host order) of the 802.1Q tag. */
struct fdb_key {
	__u8 mac[CLOUD_ETH_ALEN];
	__u16 vlan;
};

/* The kernel's struct bpf_devmap_val (uapi/linux/bpf.h): the port and the devmap program
 * (fd when written, id when read back; 0/-1 for none). */
struct cloud_devmap_val {
	__u32 ifindex;
	__s32 prog;
};

/* What the host knows of a VM, keyed by its port's ifindex (seed: include/vm_info.h). */
struct vm_info {
	__u32 vmid;
	__u8 mac[CLOUD_ETH_ALEN];
	__be16 vlan_TCI; /* 802.1Q tag pushed on VM egress; 0 = none */
	__be32 v4addr;
	__be32 v6addr[4];
};

/* ACL key: the VM's port, the L4 protocol and the destination port (0 for "any port",
 * and for protocols without ports). */
struct acl_key {
	__u32 ifindex;
	__be16 port;
	__u8 protocol;
	__u8 pad;
};

#define ACL_FLAG_ADDR_CHECK (1 << 0)

/* ACL value (seed: acl_simple's struct acl_val): optional family, optional address (the
 * peer's: source for traffic to the VM, destination for traffic from it; all-zero = any
 * address of that family), optional source port. */
struct acl_val {
	union {
		__be32 ipv4;
		__be32 ipv6[4];
	} addr;
	__u8 family; /* 0, AF_INET or AF_INET6 */
	__u8 flags;  /* ACL_FLAG_* */
	__be16 port; /* source port, 0 = any */
};

/* Frame counters, one PERCPU_ARRAY slot each (pfrps/xdp/cloud_maps.py COUNTERS). */
enum cloud_counter {
	CLOUD_L2FWD_REDIRECT = 0, /* uplink frame redirected to a port (FDB hit) */
	CLOUD_L2FWD_UNTAGGED,     /* uplink frame without an 802.1Q tag: passed */
	CLOUD_L2FWD_NO_FDB,       /* tagged, no FDB entry (unknown MAC or VLAN): passed */
	CLOUD_MALFORMED,          /* header cut short: dropped */
	CLOUD_TO_VM_PASS,         /* the devmap ACL let a frame through to its VM */
	CLOUD_TO_VM_MAC_DROP,     /* destination MAC is not the VM's */
	CLOUD_TO_VM_ACL_DROP,     /* denied by the VM's to-vm ACL */
	CLOUD_FROM_VM_SPOOF_DROP, /* source MAC is not the VM's */
	CLOUD_FROM_VM_ACL_DROP,   /* denied by the VM's from-vm ACL */
	CLOUD_FROM_VM_PASS,       /* from a VM, allowed, given to the stack */
	CLOUD_EGRESS_REDIRECT,    /* from a VM, redirected to an uplink */
	CLOUD_EGRESS_BCAST,       /* from a VM, broadcast: given to the stack */
	CLOUD_N_COUNTERS,
};

_Static_assert(sizeof(struct fdb_key) == 8, "fdb_key layout");
_Static_assert(sizeof(struct cloud_devmap_val) == 8, "bpf_devmap_val layout");
_Static_assert(sizeof(struct vm_info) == 32, "vm_info layout");
_Static_assert(sizeof(struct acl_key) == 8, "acl_key layout");
_Static_assert(sizeof(struct acl_val) == 20, "acl_val layout");

static __always_inline void cloud_count(__u32 counter)
{
	__u64 *n = bpf_map_lookup_elem(CLOUD_MAP(CLOUD_STATS_FD), &counter);

	if (n)
		*n += 1;
}

#endif /* PFRPS_CLOUD_H */
