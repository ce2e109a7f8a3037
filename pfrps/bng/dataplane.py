"""The BNG's XDP data plane: map layouts (``bpf/bng.h``), load/attach, session entries, counters.

Two XDP programs share one set of maps:

* ``bng_access`` (``bpf/bng_access.bpf.c``) on the access interface: a known PPPoE session's
  IPv4/IPv6 from its own address is decapsulated, routed with ``bpf_fib_lookup`` and
  redirected (normally to the uplink); spoofed sources drop; PPP control, discovery, unknown
  sessions and IPv6 link-local/ND go to the stack intact (the workers' packet sockets); no
  neighbour yet / fragmentation needed / TTL 1 go to the kernel decapsulated (dst MAC = the
  access interface's), so the kernel resolves the neighbour, fragments or answers (the first
  packet to a new next hop always takes that path). IPv4/IPv6 to another subscriber's address
  is hairpinned: re-encapsulated for the receiving session and sent back out (XDP_TX).
* ``bng_uplink`` (``bpf/bng_uplink.bpf.c``) on the uplink: IPv4 to a subscriber's address or
  IPv6 to its /64 is PPPoE-encapsulated (its VLAN tags, session id) and redirected to the
  access interface; packets longer than the session's MRU drop (``down_too_big``).

Maps (created once, when bcc compiles ``bng_access``; ``bng_uplink`` is relocated onto them):
``bng_sessions`` (:class:`SessionKey` -> :class:`SessionEntry`), ``bng_v4`` (IPv4 ->
key), ``bng_v6`` (/64 -> key), ``bng_counters`` (per-CPU :class:`SessionCounters` by session id, zeroed
by :meth:`DataPlane.add`, only incremented by the programs), ``bng_stats`` (per-CPU verdict
counters, :data:`STATS`), ``bng_config`` (access/uplink ifindex, access MAC).

Two ways to load:

* in a pfrps supervisor: :meth:`DataPlane.bpf_objects` for
  :attr:`pfrps.config.SupervisorConfig.bpf_objects` (compiled, loaded, configured and attached
  before the fork), :meth:`DataPlane.bind` with the supervisor's map fds afterwards, and
  :meth:`DataPlane.from_fds` in each worker (``ctx.maps``: no bcc, no compilation there);
* standalone: :meth:`DataPlane.load` and :meth:`DataPlane.attach` on an
  :class:`pfrps.xdp.attach.Attachments`, which undoes everything on close.

Native XDP redirects into a veth need an XDP program on the veth's peer (``xdp_pass``: it
gives the peer's receive queue the NAPI context the redirect needs); generic mode does not.

Map writes go through :mod:`pfrps.bpfsys` (``bpf(2)``). Per-CPU values are read as
``possible CPUs x round_up(value size, 8)`` bytes and summed.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Iterator, NamedTuple

from .. import bpfsys
from ..errors import PfrpsError, PrivilegeError, UsageError
from ..kernel import ETH_P_8021AD, ETH_P_8021Q

__all__ = [
    "SessionKey", "SessionEntry", "SessionCounters", "DataPlane", "STATS", "MAP_NAMES",
    "BngKey", "BngSession", "BngPrefix6", "BngCounters", "BngConfig", "possible_cpus",
    "ACCESS_SOURCE", "UPLINK_SOURCE", "ACCESS_FUNC", "UPLINK_FUNC", "AUTH_NONE", "AUTH_PAP", "AUTH_CHAP",
    "SF_IPV4_UP", "SF_IPV6_UP",
]

ACCESS_SOURCE, ACCESS_FUNC = "bng_access.bpf.c", "pfrps_bng_access"
UPLINK_SOURCE, UPLINK_FUNC = "bng_uplink.bpf.c", "pfrps_bng_uplink"
#: Every map of ``bpf/bng.h``, by its C name (keys of :attr:`DataPlane.maps`).
MAP_NAMES = ("bng_sessions", "bng_v4", "bng_v6", "bng_counters", "bng_stats", "bng_config")
#: ``enum bng_stat`` of ``bpf/bng.h``, in order: the keys of :meth:`DataPlane.stats`.
STATS = (
    "up_forwarded", "up_spoofed", "up_no_session", "up_to_stack", "up_no_route", "up_frag_needed",
    "up_no_neigh", "up_ttl", "up_malformed", "up_discovery", "up_other", "up_error", "up_hairpin",
    "down_forwarded", "down_no_session", "down_too_big", "down_ttl", "down_malformed", "down_other",
    "down_error",
)
#: ``struct bng_session.auth``.
AUTH_NONE, AUTH_PAP, AUTH_CHAP = 0, 1, 2
#: ``struct bng_session.flags`` (the control plane's; the programs ignore them).
SF_IPV4_UP, SF_IPV6_UP = 1 << 0, 1 << 1
DEFAULT_MRU = 1492

_BPF_PROG_TYPE_XDP = 6


# -- the C layouts (bpf/bng.h), field for field -------------------------------------------------
class BngKey(ctypes.Structure):
    """``struct bng_key`` (12 bytes): session_id in network order, VLAN ids in host order."""

    _fields_ = [("mac", ctypes.c_uint8 * 6), ("session_id", ctypes.c_uint16),
                ("outer_vid", ctypes.c_uint16), ("inner_vid", ctypes.c_uint16)]


class BngSession(ctypes.Structure):
    """``struct bng_session`` (176 bytes)."""

    _fields_ = [
        ("ac_mac", ctypes.c_uint8 * 6), ("outer_tpid", ctypes.c_uint16), ("inner_tpid", ctypes.c_uint16),
        ("mru", ctypes.c_uint16), ("ipv4", ctypes.c_uint32), ("ipv6_prefix", ctypes.c_uint8 * 8),
        ("flags", ctypes.c_uint32), ("access_ifindex", ctypes.c_uint32), ("start_ns", ctypes.c_uint64),
        ("local_magic", ctypes.c_uint32), ("peer_magic", ctypes.c_uint32), ("user", ctypes.c_char * 64),
        ("peer_ifid", ctypes.c_uint8 * 8), ("worker", ctypes.c_uint16), ("auth", ctypes.c_uint8),
        ("relay_len", ctypes.c_uint8), ("session_timeout", ctypes.c_uint32), ("local_ifid", ctypes.c_uint8 * 8),
        ("acct_id", ctypes.c_uint64), ("relay_session_id", ctypes.c_uint8 * 16), ("idle_timeout", ctypes.c_uint32),
        ("acct_interim", ctypes.c_uint32), ("reserved2", ctypes.c_uint64),
    ]


class BngPrefix6(ctypes.Structure):
    """``struct bng_prefix6``: the first 8 bytes of an IPv6 address (the bng_v6 key)."""

    _fields_ = [("p", ctypes.c_uint8 * 8)]


class BngCounters(ctypes.Structure):
    """``struct bng_counters`` (one CPU's copy)."""

    _fields_ = [("up_packets", ctypes.c_uint64), ("up_bytes", ctypes.c_uint64),
                ("down_packets", ctypes.c_uint64), ("down_bytes", ctypes.c_uint64)]


class BngConfig(ctypes.Structure):
    """``struct bng_config`` (bng_config[0])."""

    _fields_ = [("access_ifindex", ctypes.c_uint32), ("uplink_ifindex", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("access_mac", ctypes.c_uint8 * 6), ("pad", ctypes.c_uint8 * 2)]


#: C type of every map's key and value (per-CPU maps: one CPU's value).
LAYOUTS = {
    "bng_sessions": (BngKey, BngSession),
    "bng_v4": (ctypes.c_uint32, BngKey),
    "bng_v6": (BngPrefix6, BngKey),
    "bng_counters": (ctypes.c_uint32, BngCounters),
    "bng_stats": (ctypes.c_uint32, ctypes.c_uint64),
    "bng_config": (ctypes.c_uint32, BngConfig),
}
_U32 = ctypes.c_uint32


def possible_cpus() -> int:
    """CPUs a PERCPU map has a slot for (``/sys/devices/system/cpu/possible``, e.g. ``0-1``)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def _mac(raw: bytes, what: str) -> bytes:
    raw = bytes(raw)
    if len(raw) != 6:
        raise UsageError(f"{what} {raw.hex(':')!r} is not 6 bytes", hint="pass a MAC as 6 bytes")
    return raw


# -- Python views --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionKey:
    """A PPPoE session as the access wire shows it (``struct bng_key``).

    Attributes:
        mac: the client's MAC, 6 bytes.
        session_id: the PPPoE session id (1-65534).
        outer_vid, inner_vid: VLAN ids of the outer and inner tag (0 = no such tag).
    """

    mac: bytes
    session_id: int
    outer_vid: int = 0
    inner_vid: int = 0

    def pack(self) -> bytes:
        """The 12 bytes of ``struct bng_key``."""
        k = BngKey()
        k.mac[:] = _mac(self.mac, "client MAC")
        k.session_id = int.from_bytes(self.session_id.to_bytes(2, "big"), "little")
        k.outer_vid = self.outer_vid & 0x0FFF
        k.inner_vid = self.inner_vid & 0x0FFF
        return bytes(k)

    @classmethod
    def unpack(cls, raw: bytes) -> "SessionKey":
        """The inverse of :meth:`pack`."""
        k = BngKey.from_buffer_copy(raw)
        return cls(bytes(k.mac), int.from_bytes(k.session_id.to_bytes(2, "little"), "big"), k.outer_vid, k.inner_vid)


@dataclass
class SessionEntry:
    """One session's entry (``struct bng_session``) and its key.

    Attributes:
        key: the session.
        ac_mac: our MAC towards the client (source of downstream frames), 6 bytes.
        outer_tpid, inner_tpid: TPIDs of the tags (0x8100 / 0x88a8; 0 = no such tag). None
            (the default) derives them from the key: 0x8100 for each non-zero VLAN id.
            Upstream frames must carry exactly these tags; downstream frames get them.
        ipv4: the client's address (None: every IPv4 packet from it counts as spoofed).
        ipv6_prefix: the client's /64 (None: every non-link-local IPv6 packet is spoofed).
        mru: the client's MRU; downstream IP packets longer than it drop (0 = 1492).
        flags: :data:`SF_IPV4_UP` ... (control plane only).
        start_ns: session start, ``CLOCK_BOOTTIME`` nanoseconds.
        local_magic, peer_magic: LCP Magic-Numbers.
        user: the authenticated name (at most 63 bytes kept).
        peer_ifid: the peer's IPv6CP interface identifier (8 bytes).
        worker: the owning worker.
        auth: :data:`AUTH_NONE`, :data:`AUTH_PAP` or :data:`AUTH_CHAP`.
        local_ifid: our IPv6CP interface identifier (8 bytes).
        acct_id: the accounting session id (a restarted worker keeps it).
        relay_session_id: the PADR's Relay-Session-Id (at most 16 bytes kept), echoed in PADT.
        session_timeout, idle_timeout, acct_interim: seconds (RADIUS Session-Timeout from the
            session's start, Idle-Timeout, Acct-Interim-Interval); 0 = none.
        access_ifindex: the access port the session came in on (several access ports: upstream
            frames must arrive there, downstream ones go out there); 0 = ``bng_config``'s.
    """

    key: SessionKey
    ac_mac: bytes
    outer_tpid: int | None = None
    inner_tpid: int | None = None
    ipv4: IPv4Address | None = None
    ipv6_prefix: IPv6Network | None = None
    mru: int = DEFAULT_MRU
    flags: int = 0
    start_ns: int = 0
    local_magic: int = 0
    peer_magic: int = 0
    user: bytes = b""
    peer_ifid: bytes = bytes(8)
    worker: int = 0
    auth: int = AUTH_NONE
    local_ifid: bytes = bytes(8)
    acct_id: int = 0
    relay_session_id: bytes = b""
    session_timeout: int = 0
    idle_timeout: int = 0
    acct_interim: int = 0
    access_ifindex: int = 0

    def __post_init__(self) -> None:
        if self.outer_tpid is None:
            self.outer_tpid = ETH_P_8021Q if self.key.outer_vid else 0
        if self.inner_tpid is None:
            self.inner_tpid = ETH_P_8021Q if self.key.inner_vid else 0
        if self.ipv4 is not None:
            self.ipv4 = IPv4Address(self.ipv4)
        if self.ipv6_prefix is not None:
            self.ipv6_prefix = IPv6Network(self.ipv6_prefix)

    def pack(self) -> bytes:
        """The 128 bytes of ``struct bng_session``.

        Raises:
            UsageError: a MAC is not 6 bytes, the prefix is not a /64, a TPID is not a VLAN TPID.
        """
        s = BngSession()
        s.ac_mac[:] = _mac(self.ac_mac, "AC MAC")
        for name, tpid in (("outer", self.outer_tpid), ("inner", self.inner_tpid)):
            if tpid not in (0, ETH_P_8021Q, ETH_P_8021AD):
                raise UsageError(f"{name} TPID 0x{tpid:04x} is not 0x8100 or 0x88a8",
                                 hint="give 0x8100 (802.1Q), 0x88a8 (802.1ad) or 0 (no tag)")
        s.outer_tpid = self.outer_tpid
        s.inner_tpid = self.inner_tpid if self.outer_tpid else 0
        s.mru = self.mru
        s.ipv4 = int.from_bytes(self.ipv4.packed, "little") if self.ipv4 is not None else 0
        if self.ipv6_prefix is not None:
            if self.ipv6_prefix.prefixlen != 64:
                raise UsageError(f"IPv6 prefix {self.ipv6_prefix} is not a /64", hint="assign /64s to sessions")
            s.ipv6_prefix[:] = self.ipv6_prefix.network_address.packed[:8]
        s.flags = self.flags
        s.start_ns = self.start_ns
        s.local_magic = self.local_magic & 0xFFFFFFFF
        s.peer_magic = self.peer_magic & 0xFFFFFFFF
        user = self.user.encode() if isinstance(self.user, str) else bytes(self.user)
        s.user = user[:63]
        ifid = bytes(self.peer_ifid)
        s.peer_ifid[:] = (ifid + bytes(8))[:8]
        s.worker = self.worker
        s.auth = self.auth
        s.local_ifid[:] = (bytes(self.local_ifid) + bytes(8))[:8]
        s.acct_id = self.acct_id & (1 << 64) - 1
        relay = bytes(self.relay_session_id)[:16]
        s.relay_len = len(relay)
        s.relay_session_id[:len(relay)] = relay
        s.session_timeout = int(self.session_timeout) & 0xFFFFFFFF
        s.idle_timeout = int(self.idle_timeout) & 0xFFFFFFFF
        s.acct_interim = int(self.acct_interim) & 0xFFFFFFFF
        s.access_ifindex = int(self.access_ifindex) & 0xFFFFFFFF
        return bytes(s)

    @classmethod
    def unpack(cls, key: SessionKey, raw: bytes) -> "SessionEntry":
        """The inverse of :meth:`pack`."""
        s = BngSession.from_buffer_copy(raw)
        prefix = bytes(s.ipv6_prefix)
        return cls(
            key=key, ac_mac=bytes(s.ac_mac), outer_tpid=s.outer_tpid, inner_tpid=s.inner_tpid,
            ipv4=IPv4Address(s.ipv4.to_bytes(4, "little")) if s.ipv4 else None,
            ipv6_prefix=IPv6Network((IPv6Address(prefix + bytes(8)), 64)) if any(prefix) else None,
            mru=s.mru, flags=s.flags, start_ns=s.start_ns, local_magic=s.local_magic, peer_magic=s.peer_magic,
            user=s.user, peer_ifid=bytes(s.peer_ifid), worker=s.worker, auth=s.auth,
            local_ifid=bytes(s.local_ifid), acct_id=s.acct_id,
            relay_session_id=bytes(s.relay_session_id)[:min(s.relay_len, 16)],
            session_timeout=s.session_timeout, idle_timeout=s.idle_timeout, acct_interim=s.acct_interim,
            access_ifindex=s.access_ifindex)


class SessionCounters(NamedTuple):
    """One session's traffic, summed over CPUs. Bytes are IP packet lengths (no L2, no PPPoE).

    up: IP packets accepted from the client (source check passed), whatever the routing
    outcome; down: IP packets encapsulated towards it."""

    up_packets: int = 0
    up_bytes: int = 0
    down_packets: int = 0
    down_bytes: int = 0


# -- the data plane ------------------------------------------------------------------------------
class DataPlane:
    """The XDP session table and its two programs.

    Args:
        access: the subscriber-facing interface (``bng_access``; downstream frames go out here),
            or several (``bng_access`` attached on each; the first is ``bng_config``'s, a session's
            ``access_ifindex`` picks its own).
        uplink: the Internet-facing interface (``bng_uplink``).
        generic: attach in generic (SKB) mode instead of native (driver) mode.
        max_sessions: entries of the per-session maps (``-DBNG_MAX_SESSIONS``).

    Attributes:
        maps: ``{map name: fd}`` (:data:`MAP_NAMES`) once loaded, bound or made by :meth:`from_fds`;
            a forked worker passes it to :meth:`from_fds`.
        programs: ``{entry point: prog fd}`` after :meth:`load`.

    Entry methods raise :class:`~pfrps.errors.BpfLoadError` when the kernel refuses a write
    (E2BIG: the table is full).
    """

    def __init__(self, access: str, uplink: str, generic: bool = False, max_sessions: int = 65536) -> None:
        if max_sessions < 1:
            raise UsageError(f"max_sessions {max_sessions} must be at least 1", hint="give a positive table size")
        self.accesses = (access,) if isinstance(access, str) else tuple(access)
        self.access = self.accesses[0] if self.accesses else ""
        self.uplink = uplink
        self.generic = generic
        self.max_sessions = max_sessions
        self.maps: dict[str, int] = {}
        self.programs: dict[str, int] = {}
        self._ncpu = possible_cpus()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_fds(cls, maps: dict[str, int]) -> "DataPlane":
        """A handle on maps somebody else loaded (a worker's inherited ``ctx.maps``): entries,
        counters and stats work; no bcc, no compilation, nothing to close.

        Raises:
            UsageError: a map of :data:`MAP_NAMES` is missing from ``maps``.
        """
        missing = [n for n in MAP_NAMES if n not in maps]
        if missing:
            raise UsageError(f"BNG data-plane maps missing: {', '.join(missing)}",
                             hint="declare DataPlane.bpf_objects() in the SupervisorConfig")
        self = cls("", "")
        self.maps = {n: int(maps[n]) for n in MAP_NAMES}
        return self

    def cflags(self) -> tuple[str, ...]:
        """The ``-D`` knobs ``bng_access`` is compiled with."""
        return (f"-DBNG_MAX_SESSIONS={self.max_sessions}",)

    def bpf_objects(self) -> tuple:
        """The two :class:`pfrps.bpfobjects.BpfObject` values for a supervisor: ``bng_access``
        owns the maps (configured by its ``setup`` from this namespace's interfaces), ``bng_uplink``
        shares them (its own copies compiled at one entry, never used); both attached."""
        from ..bpfobjects import BpfAttach, BpfObject  # noqa: PLC0415

        return (
            BpfObject(ACCESS_SOURCE, cflags=self.cflags(), maps=MAP_NAMES,
                      attach=tuple(BpfAttach(ACCESS_FUNC, a, "xdp", self.generic) for a in self.accesses),
                      setup=self._setup),
            BpfObject(UPLINK_SOURCE, cflags=("-DBNG_MAX_SESSIONS=1",), shared_maps=MAP_NAMES,
                      attach=(BpfAttach(UPLINK_FUNC, self.uplink, "xdp", self.generic),)),
        )

    def bind(self, maps: dict[str, int]) -> None:
        """Use the supervisor's map fds (``Supervisor.bpf.maps``) after it loaded :meth:`bpf_objects`."""
        self.maps = {n: int(maps[n]) for n in MAP_NAMES}

    def _setup(self, maps: dict[str, int]) -> None:
        self.maps = {n: int(maps[n]) for n in MAP_NAMES}
        self.configure_interfaces()

    def load(self, att) -> None:
        """Compile both programs with bcc, create the maps, load both programs (the uplink's map
        references relocated onto ``bng_access``'s maps) and write ``bng_config`` from the two
        interfaces (ifindex, access MAC, resolved in ``att.netns``). Everything is released when
        ``att`` closes; :attr:`maps` holds fds of this process until then.

        Raises:
            BpfCompileError, KernelHeadersError, BccMissingError: see :mod:`pfrps.bpfload`.
            BpfLoadError, PrivilegeError: the kernel refused a map or a program.
            InterfaceError: an interface is missing.
        """
        acc = att.program(ACCESS_SOURCE, self.cflags())
        up = att.program(UPLINK_SOURCE, ("-DBNG_MAX_SESSIONS=1",))
        maps: dict[str, int] = {}
        try:
            for name in MAP_NAMES:
                maps[name] = os.dup(acc.table(name).map_fd)
        finally:
            fds = list(maps.values())
            att.callback(lambda: [os.close(fd) for fd in fds], "BNG map fds")
        self.maps = maps
        for mod, func, shared in ((acc, ACCESS_FUNC, None), (up, UPLINK_FUNC, maps)):
            try:
                fd = mod.load(func, map_fds=shared, prog_type=_BPF_PROG_TYPE_XDP)
            except PfrpsError as exc:
                if exc.code == errno.EPERM:
                    raise PrivilegeError(f"cannot load BPF program {func}: operation not permitted",
                                         hint="run as root or with CAP_BPF and CAP_NET_ADMIN") from None
                raise
            att.callback(lambda fd=fd: os.close(fd), f"program {func}")
            self.programs[func] = fd
        up.close()   # its own (one-entry) copies of the maps are not used
        acc.close()  # the maps live on: our fds and the programs hold them
        self.configure_interfaces(att.netns)

    def attach(self, att) -> None:
        """Attach ``bng_access`` to the access interface and ``bng_uplink`` to the uplink (native,
        or generic when ``generic``); detached when ``att`` closes.

        Raises:
            UsageError: no native XDP (``generic`` needed), an XDP program there already.
        """
        for access in self.accesses:
            att.xdp(access, self.programs[ACCESS_FUNC], self.generic)
        att.xdp(self.uplink, self.programs[UPLINK_FUNC], self.generic)

    def configure_interfaces(self, netns: str | None = None) -> None:
        """Write ``bng_config`` from :attr:`access` and :attr:`uplink` as seen in ``netns``
        (default: this process's namespace)."""
        from pyroute2 import IPRoute  # noqa: PLC0415

        from ..xdp.attach import resolve_ifindex  # noqa: PLC0415

        acc = resolve_ifindex(self.access, netns)
        up = resolve_ifindex(self.uplink, netns)
        with (IPRoute(netns=netns, flags=0) if netns else IPRoute()) as ipr:
            mac = ipr.get_links(acc)[0].get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00"
        self.configure(acc, up, bytes.fromhex(mac.replace(":", "")))

    def configure(self, access_ifindex: int, uplink_ifindex: int, access_mac: bytes) -> None:
        """Write ``bng_config[0]`` directly (downstream frames go to ``access_ifindex``;
        decapsulated frames passed to the kernel get ``access_mac`` as destination)."""
        c = BngConfig(access_ifindex=access_ifindex, uplink_ifindex=uplink_ifindex)
        c.access_mac[:] = _mac(access_mac, "access MAC")
        bpfsys.map_update(self.maps["bng_config"], bytes(_U32(0)), bytes(c))

    def config(self) -> tuple[int, int, bytes]:
        """``(access ifindex, uplink ifindex, access MAC)`` of ``bng_config``."""
        raw = bpfsys.map_lookup(self.maps["bng_config"], bytes(_U32(0)), ctypes.sizeof(BngConfig))
        c = BngConfig.from_buffer_copy(raw)
        return c.access_ifindex, c.uplink_ifindex, bytes(c.access_mac)

    # -- entries --------------------------------------------------------------------------------
    def _percpu_size(self, ctype) -> int:
        return ((ctypes.sizeof(ctype) + 7) // 8 * 8) * self._ncpu

    def _lookup_key(self, name: str, key: bytes) -> SessionKey | None:
        raw = bpfsys.map_lookup(self.maps[name], key, ctypes.sizeof(BngKey))
        return SessionKey.unpack(raw) if raw is not None else None

    def lookup(self, key: SessionKey) -> SessionEntry | None:
        """The entry of ``key``, or None."""
        raw = bpfsys.map_lookup(self.maps["bng_sessions"], key.pack(), ctypes.sizeof(BngSession))
        return SessionEntry.unpack(key, raw) if raw is not None else None

    def add(self, entry: SessionEntry) -> None:
        """Write (or rewrite) a session: its counters (zero, kept when it exists), its entry,
        then its address mappings; a mapping of the previous entry that changed is removed.
        An address mapped to another session is taken over (pools are disjoint per worker).

        Raises:
            UsageError: a malformed entry (see :meth:`SessionEntry.pack`).
            BpfLoadError: the kernel refused (E2BIG: a table is full).
        """
        kraw = entry.key.pack()
        value = entry.pack()
        old = self.lookup(entry.key)
        if old is None:  # a new session: its counter slot (the session id) starts at zero
            bpfsys.map_update(self.maps["bng_counters"], self._slot(entry.key), bytes(self._percpu_size(BngCounters)))
        bpfsys.map_update(self.maps["bng_sessions"], kraw, value)
        if entry.ipv4 is not None:
            bpfsys.map_update(self.maps["bng_v4"], entry.ipv4.packed, kraw)
        if entry.ipv6_prefix is not None:
            bpfsys.map_update(self.maps["bng_v6"], entry.ipv6_prefix.network_address.packed[:8], kraw)
        if old is not None:
            if old.ipv4 is not None and old.ipv4 != entry.ipv4:
                self._unmap("bng_v4", old.ipv4.packed, entry.key)
            if old.ipv6_prefix is not None and old.ipv6_prefix != entry.ipv6_prefix:
                self._unmap("bng_v6", old.ipv6_prefix.network_address.packed[:8], entry.key)

    def _unmap(self, name: str, addr: bytes, key: SessionKey) -> None:
        """Delete mapping ``addr`` of map ``name`` if it still points at ``key``."""
        if self._lookup_key(name, addr) == key:
            bpfsys.map_delete(self.maps[name], addr)

    def remove(self, key: SessionKey) -> bool:
        """Remove a session: address mappings first (no new downstream frame finds it), the
        entry, its counters (read :meth:`counters` before). True when the entry existed."""
        kraw = key.pack()
        old = self.lookup(key)
        if old is not None:
            if old.ipv4 is not None:
                self._unmap("bng_v4", old.ipv4.packed, key)
            if old.ipv6_prefix is not None:
                self._unmap("bng_v6", old.ipv6_prefix.network_address.packed[:8], key)
        existed = bpfsys.map_delete(self.maps["bng_sessions"], kraw)
        return existed

    @staticmethod
    def _slot(key: SessionKey) -> bytes:
        """``bng_counters``' index of ``key``: its session id (unique across workers)."""
        return int(key.session_id).to_bytes(4, "little")

    def entries(self) -> Iterator[SessionEntry]:
        """Every session in the table (entries removed during the walk are skipped)."""
        for kraw in list(bpfsys.map_keys(self.maps["bng_sessions"], ctypes.sizeof(BngKey))):
            key = SessionKey.unpack(kraw)
            entry = self.lookup(key)
            if entry is not None:
                yield entry

    def ipv4_owner(self, addr: IPv4Address) -> SessionKey | None:
        """The session ``bng_v4`` maps ``addr`` to, or None."""
        return self._lookup_key("bng_v4", IPv4Address(addr).packed)

    def ipv6_owner(self, prefix: IPv6Network) -> SessionKey | None:
        """The session ``bng_v6`` maps ``prefix`` (its first 64 bits) to, or None."""
        return self._lookup_key("bng_v6", IPv6Network(prefix, strict=False).network_address.packed[:8])

    # -- counters -------------------------------------------------------------------------------
    def counters(self, key: SessionKey) -> SessionCounters:
        """``key``'s traffic summed over CPUs; all zero when the session has no counters."""
        size = ctypes.sizeof(BngCounters)
        if self.lookup(key) is None:
            return SessionCounters()
        raw = bpfsys.map_lookup(self.maps["bng_counters"], self._slot(key), self._percpu_size(BngCounters))
        if raw is None:
            return SessionCounters()
        step = (size + 7) // 8 * 8
        tot = [0, 0, 0, 0]
        for cpu in range(self._ncpu):
            c = BngCounters.from_buffer_copy(raw, cpu * step)
            tot[0] += c.up_packets
            tot[1] += c.up_bytes
            tot[2] += c.down_packets
            tot[3] += c.down_bytes
        return SessionCounters(*tot)

    def stats(self) -> dict[str, int]:
        """Verdict counters (:data:`STATS`) summed over CPUs."""
        out: dict[str, int] = {}
        for i, name in enumerate(STATS):
            raw = bpfsys.map_lookup(self.maps["bng_stats"], bytes(_U32(i)), 8 * self._ncpu)
            out[name] = sum(int.from_bytes(raw[j:j + 8], "little") for j in range(0, len(raw), 8)) if raw else 0
        return out
