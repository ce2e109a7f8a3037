"""Kernel constants and struct layouts pfrps uses, defined once.

Sources: packet(7), ``include/uapi/linux/if_packet.h`` and ``include/uapi/linux/if_ether.h``
(Linux 6.x), bpf(2), prctl(2) (``include/uapi/linux/prctl.h``). Every other module imports these
names from here (the bpf(2) syscall number, which differs per architecture, is
:data:`pfrps.bpfsys.NR_BPF`).
"""

from __future__ import annotations

import struct

# -- ethertypes (if_ether.h) ------------------------------------------------------------------
ETH_P_ALL = 0x0003
ETH_P_PPP_DISC = 0x8863  # RFC 2516 discovery stage
ETH_P_PPP_SES = 0x8864   # RFC 2516 session stage
ETH_P_8021Q = 0x8100     # IEEE 802.1Q C-tag (also the outer tag of 0x8100/0x8100 QinQ)
ETH_P_8021AD = 0x88A8    # IEEE 802.1ad S-tag
ETH_HLEN = 14

# -- socket options (socket(7), packet(7)) ----------------------------------------------------
SOL_PACKET = 263
SO_ATTACH_BPF = 50
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SO_TIMESTAMPNS = 35
PACKET_RX_RING = 5
PACKET_TX_RING = 13
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_FANOUT_DATA = 22
PACKET_IGNORE_OUTGOING = 23
#: ``sll_pkttype`` of a frame this host sent (the address recvfrom(2) returns, packet(7)).
PACKET_OUTGOING = 4

# -- prctl(2) options (include/uapi/linux/prctl.h) ------------------------------------------------
#: the signal a process gets when the thread that forked it exits
PR_SET_PDEATHSIG = 1
#: the calling thread's name (``comm``, 15 bytes + NUL), what ps and top show
PR_SET_NAME = 15
#: no execve(2) may grant privileges again (setuid bits, file capabilities)
PR_SET_NO_NEW_PRIVS = 38

# -- fanout (packet(7) PACKET_FANOUT, if_packet.h) ----------------------------------------------
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_EBPF = 7
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000  # kernel 4.20+: the kernel picks an unused group id
#: Members of a fanout group when ``max_num_members`` is not given (the int form of
#: PACKET_FANOUT, and kernels before 5.11, which only know that form).
FANOUT_DEFAULT_MAX_MEMBERS = 256
#: ``struct fanout_args { __u16 id; __u16 type_flags; __u32 max_num_members; }`` (5.11+;
#: on a little-endian host its first 4 bytes equal the int form ``id | type_flags << 16``).
FANOUT_ARGS = struct.Struct("=HHI")

# -- TPACKET (if_packet.h) ----------------------------------------------------------------------
TPACKET_V2 = 1
TPACKET_V3 = 2
TPACKET_ALIGNMENT = 16
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_VLAN_VALID = 1 << 4
#: tp_vlan_tpid is valid (the stripped tag's TPID: 0x8100 or 0x88a8), packet(7).
TP_STATUS_VLAN_TPID_VALID = 1 << 6
#: ``struct tpacket_auxdata``: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci,
#: tp_vlan_tpid (PACKET_AUXDATA control message).
TPACKET_AUXDATA = struct.Struct("=IIIHHHH")
AUXDATA_SIZE = TPACKET_AUXDATA.size
#: ``struct tpacket_req3``: block_size, block_nr, frame_size, frame_nr, retire_blk_tov (ms),
#: sizeof_priv, feature_req_word.
TPACKET_REQ3 = struct.Struct("=7I")
#: The first fields of ``struct tpacket3_hdr``: next_offset, sec, nsec, snaplen, len, status, mac.
TPACKET3_HDR = struct.Struct("=6IH")
#: TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll): 48 + 20 bytes.
TPACKET3_HDRLEN = 68
#: ``struct tpacket_stats`` (packets, drops) and ``tpacket_stats_v3`` (+ freeze_q_cnt).
TPACKET_STATS = struct.Struct("=II")
TPACKET_STATS_V3 = struct.Struct("=III")
