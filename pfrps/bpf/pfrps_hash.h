/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pfrps_hash.h: the three source-MAC hashes of the seed's bpf_rps.bpf, bit for bit.
 * pfrps/hashing.py is the numpy reference of the same functions. */
#ifndef PFRPS_HASH_H
#define PFRPS_HASH_H

#include "pfrps.h"

#define PFRPS_JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 pfrps_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> (32 - shift));
}

/* __jhash_final(a, b, c) of include/linux/jhash.h (lookup3's final mix); returns c. */
static __always_inline __u32 pfrps_jhash_final(__u32 a, __u32 b, __u32 c)
{
	c ^= b; c -= pfrps_rol32(b, 14);
	a ^= c; a -= pfrps_rol32(c, 11);
	b ^= a; b -= pfrps_rol32(a, 25);
	c ^= b; c -= pfrps_rol32(b, 16);
	a ^= c; a -= pfrps_rol32(c, 4);
	b ^= a; b -= pfrps_rol32(a, 14);
	c ^= b; c -= pfrps_rol32(b, 24);
	return c;
}

/* Bytes shifted in one at a time: bytes 2..5 of the address remain. */
static __always_inline __u32 pfrps_mac_hash(const __u8 *mac)
{
	__u32 h = 0;
#pragma unroll
	for (int i = 0; i < 6; i++)
		h = (h << 8) | mac[i];
	return h;
}

/* The kernel's jhash_2words(a, b, 0): lookup3's final mix (include/linux/jhash.h). */
static __always_inline __u32 pfrps_mac_jhash(const __u8 *mac)
{
	__u32 a = mac[0] | (mac[1] << 8) | (mac[2] << 16) | ((__u32)mac[3] << 24);
	__u32 b = mac[4] | (mac[5] << 8);
	__u32 c = PFRPS_JHASH_INITVAL + (2 << 2);

	a += c;
	b += c;
	return pfrps_jhash_final(a, b, c);
}

/* Bob Jenkins' one-at-a-time hash over the six bytes, from 0xdeadbeef. */
static __always_inline __u32 pfrps_jhash_oaat(const __u8 *mac)
{
	__u32 h = PFRPS_JHASH_INITVAL;
#pragma unroll
	for (int i = 0; i < 6; i++) {
		h += mac[i];
		h += h << 10;
		h ^= h >> 6;
	}
	h += h << 3;
	h ^= h >> 11;
	h += h << 15;
	return h;
}

static __always_inline __u32 pfrps_hash(const __u8 *mac, __u32 alg)
{
	switch (alg) {
	case PFRPS_HASH_MAC_JHASH:
		return pfrps_mac_jhash(mac);
	case PFRPS_HASH_JHASH_OAAT:
		return pfrps_jhash_oaat(mac);
	default:
		return pfrps_mac_hash(mac);
	}
}

#endif /* PFRPS_HASH_H */
