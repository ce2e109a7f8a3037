/* SPDX-License-Identifier: GPL-2.0-or-later */
/* bng.h: the pfrps-bng XDP data plane's maps and layouts, shared by bng_access.bpf.c
 * (subscribers -> Internet) and bng_uplink.bpf.c (Internet -> subscribers), and mirrored
 * field for field by pfrps/bng/dataplane.py (ctypes; a test compares sizes and offsets
 * with what bcc compiled).
 *
 * The maps are declared here and created once, when bcc compiles bng_access.bpf.c; the
 * uplink program is loaded with its map references relocated to the same maps
 * (CompiledModule.load(map_fds=...)), so both programs and every worker (fds inherited
 * over fork) share one session table. Only the owning worker writes a MAC's entries.
 *
 *   bng_sessions  HASH        struct bng_key -> struct bng_session   (BNG_MAX_SESSIONS)
 *   bng_v4        HASH        __be32 (subscriber IPv4) -> struct bng_key
 *   bng_v6        HASH        struct bng_prefix6 (/64) -> struct bng_key
 *   bng_counters  PERCPU_ARRAY session id (host order) -> struct bng_counters: session ids
 *                             are unique across the workers, so the id is the slot (one
 *                             array lookup per frame instead of a hash lookup); user space
 *                             zeroes the slot when it adds the session
 *   bng_stats     PERCPU_ARRAY enum bng_stat -> __u64 (verdict counters)
 *   bng_config    ARRAY[1]    struct bng_config (access/uplink ifindex, access MAC)
 *
 * Knobs (-D): BNG_MAX_SESSIONS (default 65536): entries of the four per-session maps.
 */
#ifndef PFRPS_BNG_H
#define PFRPS_BNG_H

#include <uapi/linux/bpf.h>

#ifndef BNG_MAX_SESSIONS
#define BNG_MAX_SESSIONS 65536
#endif

#define BNG_ETH_P_8021Q 0x8100
#define BNG_ETH_P_8021AD 0x88A8
#define BNG_ETH_P_PPP_DISC 0x8863
#define BNG_ETH_P_PPP_SES 0x8864
#define BNG_PPP_IPV4 0x0021
#define BNG_PPP_IPV6 0x0057
#define BNG_PPPOE_VER_TYPE 0x11
/* PPPoE header (6) + PPP protocol (2): what decapsulation removes besides the VLAN tags. */
#define BNG_PPPOE_OVERHEAD 8
#define BNG_VLAN_HLEN 4
#define BNG_VID_MASK 0x0FFF
/* An MRU of 0 in a session means the PPPoE default (RFC 2516: 1492). */
#define BNG_DEFAULT_MRU 1492
/* The longest PPPoE payload / IP packet looked at, bytes (longer ones pass to the stack). A
 * bound the verifier can see before any packet-pointer arithmetic with a length read from the
 * frame: older verifiers (Linux 6.1) lose the bounds of a byte-swapped value. */
#ifndef BNG_MAX_LEN
#define BNG_MAX_LEN 9216
#endif

/* A PPPoE session as seen on the access wire: client MAC, PPPoE session id (network order,
 * as in the frame), VLAN ids of the outer and inner tag (host order, 0 = no such tag).
 * 12 bytes, no padding. */
struct bng_key {
	__u8 mac[6];
	__be16 session_id;
	__u16 outer_vid;
	__u16 inner_vid;
};

/* bng_session.auth */
#define BNG_AUTH_NONE 0
#define BNG_AUTH_PAP 1
#define BNG_AUTH_CHAP 2

/* One session: what the data plane needs (first 32 bytes) and the control plane's durable
 * record (the rest; the programs never read it). 176 bytes, no implicit padding.
 *
 * outer_tpid / inner_tpid: host order, 0 = no such tag. An upstream frame must carry
 * exactly these tags (same TPIDs) to match, and downstream frames get them. */
struct bng_session {
	__u8 ac_mac[6];          /*   0: our MAC towards this client (downstream source) */
	__u16 outer_tpid;        /*   6: 0x8100 / 0x88a8, 0 = untagged */
	__u16 inner_tpid;        /*   8: 0x8100, 0 = at most one tag */
	__u16 mru;               /*  10: the client's MRU; longer downstream IP packets drop */
	__be32 ipv4;             /*  12: network order, 0 = none (IPv4 from it spoofed) */
	__u8 ipv6_prefix[8];     /*  16: the client's /64, all-zero = none */
	__u32 flags;             /*  24: BNG_SF_*, control plane's (the programs ignore them) */
	__u32 access_ifindex;    /*  28: the access port it came in on (several access ports:
				  *      upstream must arrive there, downstream is redirected there);
				  *      0 = bng_config's access_ifindex */
	__u64 start_ns;          /*  32: session start, CLOCK_BOOTTIME ns */
	__u32 local_magic;       /*  40: LCP Magic-Numbers */
	__u32 peer_magic;        /*  44 */
	char user[64];           /*  48: authenticated peer name, NUL padded */
	__u8 peer_ifid[8];       /* 112: IPv6CP interface identifier of the peer */
	__u16 worker;            /* 120: the owning worker */
	__u8 auth;               /* 122: BNG_AUTH_* */
	__u8 relay_len;          /* 123: bytes of relay_session_id used (0: none) */
	__u32 session_timeout;   /* 124: seconds from start_ns, 0 = none (RADIUS Session-Timeout) */
	__u8 local_ifid[8];      /* 128: our IPv6CP interface identifier (the RA's fe80:: source) */
	__u64 acct_id;           /* 136: the accounting session id (RADIUS Acct-Session-Id) */
	__u8 relay_session_id[16]; /* 144: the PADR's Relay-Session-Id TAG, echoed in PADT */
	__u32 idle_timeout;      /* 160: seconds, 0 = none (RADIUS Idle-Timeout) */
	__u32 acct_interim;      /* 164: Interim-Update interval, seconds, 0 = none */
	__u64 reserved2;         /* 168 */
};                               /* 176 */

/* bng_session.flags (control plane only) */
#define BNG_SF_IPV4_UP (1U << 0)
#define BNG_SF_IPV6_UP (1U << 1)

/* The bng_v6 key: the first 8 bytes (the /64) of an IPv6 address. */
struct bng_prefix6 {
	__u8 p[8];
};

/* Per session, summed over CPUs by user space. bytes = IP packet lengths (no L2). */
struct bng_counters {
	__u64 up_packets;
	__u64 up_bytes;
	__u64 down_packets;
	__u64 down_bytes;
};

/* bng_config[0]. ifindexes as seen in the namespace the programs run in. */
struct bng_config {
	__u32 access_ifindex;    /* downstream frames are redirected here */
	__u32 uplink_ifindex;    /* informational (upstream goes where the FIB says) */
	__u32 flags;             /* reserved, 0 */
	__u8 access_mac[6];      /* dst MAC of decapsulated frames passed to the stack */
	__u8 pad[2];
};

/* bng_stats slots; pfrps/bng/dataplane.py STATS names them in this order. */
enum bng_stat {
	BNG_UP_FORWARDED = 0,    /* decapsulated, routed, redirected (XDP_REDIRECT) */
	BNG_UP_SPOOFED,          /* source not the session's address/prefix (XDP_DROP) */
	BNG_UP_NO_SESSION,       /* IP in a PPPoE session we do not know (XDP_PASS: PADT) */
	BNG_UP_TO_STACK,         /* PPP control, IPv6 link-local / ND / multicast (XDP_PASS) */
	BNG_UP_NO_ROUTE,         /* FIB: blackhole, unreachable, prohibit, local, ... (XDP_DROP) */
	BNG_UP_FRAG_NEEDED,      /* FIB: longer than the egress MTU (decapsulated XDP_PASS) */
	BNG_UP_NO_NEIGH,         /* FIB: next hop not resolved (decapsulated XDP_PASS) */
	BNG_UP_TTL,              /* TTL / hop limit <= 1 (decapsulated XDP_PASS) */
	BNG_UP_MALFORMED,        /* bad PPPoE/IP header or lengths (XDP_PASS) */
	BNG_UP_DISCOVERY,        /* PPPoE discovery 0x8863 (XDP_PASS) */
	BNG_UP_OTHER,            /* not PPPoE (ARP, plain IP, 3+ tags, runts) (XDP_PASS) */
	BNG_UP_ERROR,            /* bpf_xdp_adjust_head failed, no config (XDP_DROP / PASS) */
	BNG_UP_HAIRPIN,          /* to another subscriber: re-encapsulated, XDP_TX */
	BNG_DOWN_FORWARDED,      /* encapsulated, redirected to the access interface */
	BNG_DOWN_NO_SESSION,     /* IP to no subscriber (XDP_PASS) */
	BNG_DOWN_TOO_BIG,        /* IP longer than the session's MRU (XDP_DROP; hairpin too) */
	BNG_DOWN_TTL,            /* TTL / hop limit <= 1 (XDP_PASS, the kernel answers) */
	BNG_DOWN_MALFORMED,      /* IP header or length inconsistent with the frame (XDP_PASS) */
	BNG_DOWN_OTHER,          /* not IPv4/IPv6 (ARP, ND to us, tagged) (XDP_PASS) */
	BNG_DOWN_ERROR,          /* no headroom, no config (XDP_DROP / XDP_PASS) */
	BNG_STAT_MAX,
};

BPF_TABLE("hash", struct bng_key, struct bng_session, bng_sessions, BNG_MAX_SESSIONS);
BPF_TABLE("hash", __be32, struct bng_key, bng_v4, BNG_MAX_SESSIONS);
BPF_TABLE("hash", struct bng_prefix6, struct bng_key, bng_v6, BNG_MAX_SESSIONS);
/* Indexed by the session id: 65536 slots x 32 bytes per possible CPU (2 MiB per CPU), one
 * array lookup per frame (the hash lookup it replaces cost upstream forwarding about 8%). */
#define BNG_COUNTER_SLOTS 65536
BPF_PERCPU_ARRAY(bng_counters, struct bng_counters, BNG_COUNTER_SLOTS);
BPF_PERCPU_ARRAY(bng_stats, __u64, BNG_STAT_MAX);
BPF_ARRAY(bng_config, struct bng_config, 1);

/* ---- helpers (no map calls here: bcc rewrites those only in the main file) ---------- */

/* One count in a bng_stats slot (the pointer the program looked up; NULL = nothing). */
static __always_inline void bng_stat_add(__u64 *slot)
{
	if (slot)
		*slot += 1;
}

static __always_inline int bng_mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5])) == 0;
}

static __always_inline int bng_prefix_zero(const __u8 *p)
{
	return (p[0] | p[1] | p[2] | p[3] | p[4] | p[5] | p[6] | p[7]) == 0;
}

static __always_inline int bng_prefix_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5]) | (a[6] ^ b[6]) | (a[7] ^ b[7])) == 0;
}

/* The 4-byte VLAN tag at h. */
static __always_inline void bng_put_tag(__u8 *h, __u16 tpid, __u16 vid)
{
	*(__be16 *)h = bpf_htons(tpid);
	*(__be16 *)(h + 2) = bpf_htons(vid & BNG_VID_MASK);
}

/* Ethertype 0x8864, the PPPoE session header and the PPP protocol (10 bytes) at h. */
static __always_inline void bng_put_pppoe(__u8 *h, __be16 sid, __u16 ip_len, __u16 ppp)
{
	*(__be16 *)h = bpf_htons(BNG_ETH_P_PPP_SES);
	h[2] = BNG_PPPOE_VER_TYPE;
	h[3] = 0;
	*(__be16 *)(h + 4) = sid;
	*(__be16 *)(h + 6) = bpf_htons(ip_len + 2);
	*(__be16 *)(h + 8) = bpf_htons(ppp);
}

/* Write the downstream header of session key/ac_mac at data (the head already moved to
 * make room for 22 + 4 * tags bytes before the IP packet):
 *   key.mac ac_mac [outer_tpid outer_vid [inner_tpid inner_vid]] 0x8864 11 00 sid len ppp
 * 0, or -1 when the frame is shorter than the longest header (30 bytes; an IP packet
 * follows any header, so a real frame never is). */
static __always_inline int bng_write_encap(void *data, void *data_end, const struct bng_key *key,
					   const __u8 *ac_mac, __u32 tags, __u16 outer_tpid,
					   __u16 inner_tpid, __u16 ip_len, __u16 ppp)
{
	__u8 *h = data;

	if ((void *)(h + 30) > data_end)
		return -1;
	__builtin_memcpy(h, key->mac, 6);
	__builtin_memcpy(h + 6, ac_mac, 6);
	if (tags == 0) {
		bng_put_pppoe(h + 12, key->session_id, ip_len, ppp);
	} else if (tags == 1) {
		bng_put_tag(h + 12, outer_tpid, key->outer_vid);
		bng_put_pppoe(h + 16, key->session_id, ip_len, ppp);
	} else {
		bng_put_tag(h + 12, outer_tpid, key->outer_vid);
		bng_put_tag(h + 16, inner_tpid, key->inner_vid);
		bng_put_pppoe(h + 20, key->session_id, ip_len, ppp);
	}
	return 0;
}

#endif /* PFRPS_BNG_H */
