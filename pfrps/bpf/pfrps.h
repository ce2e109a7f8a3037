/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pfrps.h: layouts shared by the BPF programs and by pfrps (Python).
 *
 * pfrps reads the layout of struct pfrps_opts from bcc's description of the map
 * "pfrps_opts" compiled from this header, so Python never restates it by hand;
 * tests/unit/test_layout.py checks that the enum below matches pfrps.hashing.ALGORITHMS.
 *
 * Compile-time knobs (pass as -D flags; the defaults below apply otherwise):
 *   PFRPS_MAX_ETHERTYPES  ethertypes one steering program can match (default 8)
 */
#ifndef PFRPS_H
#define PFRPS_H

#ifndef PFRPS_MAX_ETHERTYPES
#define PFRPS_MAX_ETHERTYPES 8
#endif

enum pfrps_hash_alg {
	PFRPS_HASH_MAC = 0,        /* bytes 2..5 of the source MAC */
	PFRPS_HASH_MAC_JHASH = 1,  /* jhash_2words(mac[0..3], mac[4..5], 0) */
	PFRPS_HASH_JHASH_OAAT = 2, /* Jenkins one-at-a-time from 0xdeadbeef */
};

/* One entry, key 0, of the BPF array map "pfrps_opts". */
struct pfrps_opts {
	__u32 worker_id;     /* filter mode: the worker this socket belongs to */
	__u32 worker_count;  /* N: a frame goes to worker hash % N */
	__u32 hash_alg;      /* enum pfrps_hash_alg */
	__u32 n_ethertypes;  /* 0: every ethertype; else the first n of ethertypes[] */
	__u16 ethertypes[PFRPS_MAX_ETHERTYPES]; /* host byte order, e.g. 0x8863 */
};

#endif /* PFRPS_H */
