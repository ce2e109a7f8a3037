"""The two receive paths, side by side: a TPACKET_V3 ring (``--rx ring``, :class:`RxRing` and
:class:`RingReceiver`: frames read from shared memory, no syscall per frame) and one
``recvmsg`` per frame (``--rx recv``, :class:`RecvReceiver`), plus the :class:`FrameMeta`
both hand to the handler. A receiver has ``fileno()`` (wait for readability) and
``poll(on_frame, ifindex, budget) -> (frames, bytes, truncated)`` (:class:`Receiver`).

One module per job, all names importable from here: :mod:`.meta` (FrameMeta, the Receiver
protocol, releasing a frame's view), :mod:`.recv` (the recv path), :mod:`.geometry` (ring
geometry and architecture checks), :mod:`.ring` (ring set-up in the supervisor: RxRing,
make_rings) and :mod:`.reader` (the ring reader in the worker: RingReceiver, the read position).

Sources: packet(7) (``PACKET_VERSION``, ``PACKET_RX_RING``, ``PACKET_STATISTICS``) and the
kernel's ``Documentation/networking/packet_mmap.rst`` (TPACKET_V3 section), with the layouts of
``include/uapi/linux/if_packet.h``.

The ring is ``blocks`` blocks of ``block_size`` bytes, mapped ``MAP_SHARED`` into the process
(``block_size * blocks`` bytes of kernel memory per socket). The kernel fills one block at a
time with frames; it hands a block to user space (``block_status & TP_STATUS_USER``) when the
block is full or ``retire_ms`` milliseconds after it was opened, and takes it back when user
space writes ``TP_STATUS_KERNEL`` to ``block_status``. Blocks are handed out and must be given
back in ring order. Each block starts with ``struct tpacket_block_desc``::

    offset  0  u32 version            offset 16  u32 offset_to_first_pkt
    offset  4  u32 offset_to_priv     offset 20  u32 blk_len
    offset  8  u32 block_status       offset 24  u64 seq_num (1, 2, 3, ... in fill order)
    offset 12  u32 num_pkts           offset 32  ts_first_pkt, offset 40 ts_last_pkt

and every frame in it with ``struct tpacket3_hdr`` (48 bytes), chained by ``tp_next_offset``
(0 on the block's last frame)::

    offset  0  u32 tp_next_offset     offset 20  u32 tp_status (TP_STATUS_VLAN_VALID, ...)
    offset  4  u32 tp_sec             offset 24  u16 tp_mac (frame start, from this header)
    offset  8  u32 tp_nsec            offset 26  u16 tp_net
    offset 12  u32 tp_snaplen         offset 28  u32 hv1.tp_rxhash
    offset 16  u32 tp_len (wire)      offset 32  u32 hv1.tp_vlan_tci, offset 36 u16 tp_vlan_tpid

:class:`RxRing` sets the ring up in the supervisor (which maps it only to discard what
arrived before the run, then unmaps it: the workers fork with no ring mapped, and each maps
its own); each worker reads its socket's ring through a :class:`RingReceiver`.

Read state a kill cannot tear. The read position is ONE 64-bit word in a small ``MAP_SHARED``
page of the :class:`RxRing`, shared by the supervisor and every incarnation of the worker::

    position = seq << 32 | frames_handed_out << 1 | in_handler

``seq`` is the ``seq_num`` of the block being read (the kernel numbers blocks 1, 2, 3, ... in
ring order, so the block index is ``(seq - 1) % blocks``), ``frames_handed_out`` how many of
its frames were given to the handler (the next frame's offset is found by walking
``tp_next_offset`` from the first), and ``in_handler`` is set while a frame is in the handler.
Every change of position is one aligned 8-byte store, so a worker SIGKILLed at any
instruction leaves either the old or the new position, never a mix: a frame is handed out
at most once; a worker killed inside the handler leaves ``in_handler`` set and the
supervisor counts that frame as ``interrupted`` (at most one per death). A block whose frames
were all handed out has its position moved to ``seq + 1`` *before* it is given back to the
kernel; if the worker dies in between, its successor gives back the user-owned block whose
``seq_num`` is one behind (a stale block: never delivered twice). A user-owned block whose
``seq_num`` is not the expected one is never read.

Architecture assumption (checked: :func:`check_architecture`): x86-64, where aligned 8-byte
stores are single-copy atomic and the memory model is TSO (stores are seen in program order,
loads are not reordered with older loads): the kernel's ``smp_wmb`` before it sets
``TP_STATUS_USER`` makes the block's frames visible before the status, and our read of the
frames happens before our store of ``TP_STATUS_KERNEL``, with no explicit fence on our side.
Other architectures would need acquire/release ordering that Python cannot express; use
``--rx recv`` there.
"""

from .geometry import DEFAULT_RETIRE_MS, MIN_FRAME_SIZE, TSO_ARCHITECTURES, check_architecture, check_geometry
from .meta import LINK_ERRNOS, FrameMeta, OnFrame, Receiver, release_view
from .reader import RingReceiver, position, split_position
from .recv import RecvReceiver
from .ring import RxRing, make_rings

__all__ = [
    "Receiver",
    "OnFrame",
    "RxRing",
    "RingReceiver",
    "check_geometry",
    "MIN_FRAME_SIZE",
    "DEFAULT_RETIRE_MS",
    "TSO_ARCHITECTURES",
    "FrameMeta",
    "RecvReceiver",
    "check_architecture",
    "make_rings",
    "position",
    "split_position",
    "release_view",
    "LINK_ERRNOS",
]
