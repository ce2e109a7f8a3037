"""Two-node test topologies in network namespaces, built with pyroute2.

The default mirrors the seed's QEMU picture::

    injector netns                           node netns
    +----------------------+   veth pair   +--------------------------------+
    | eno1 (02:..:random)  |<------------->| enp1s0 (52:54:00:84:d7:ff)     |
    +----------------------+               +--------------------------------+

IPv6 is disabled in both namespaces before the links exist (no autoconf, no DAD, no router
or MLD chatter), so the only frames that cross the link are the ones a test injects.
Every namespace this module creates is removed by :meth:`TwoNodeTopology.destroy`, which
also ends the processes it started inside them; a name that already exists is refused, never
reused or removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Iterator, Sequence

from .errors import TopologyError

__all__ = ["TwoNodeTopology", "unique_suffix", "netns_exists", "netns_pids", "create_netns", "remove_netns",
           "register_netns", "NETNS_REGISTRY_ENV"]

NETNS_RUN_DIR = Path("/var/run/netns")
#: When set, every namespace pfrps creates is appended (one name a line) to the file it names:
#: the test suite's closing check counts only those, never another program's namespaces.
NETNS_REGISTRY_ENV = "PFRPS_NETNS_REGISTRY"


def register_netns(name: str) -> None:
    """Record namespace ``name`` in ``$PFRPS_NETNS_REGISTRY`` (when set); :func:`create_netns`
    calls it, code that creates namespaces another way calls it too."""
    path = os.environ.get(NETNS_REGISTRY_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)


def unique_suffix() -> str:
    """Eight hex characters, for namespace names that never collide between runs."""
    return uuid.uuid4().hex[:8]


def netns_exists(name: str) -> bool:
    """True when a named network namespace ``name`` exists (``/var/run/netns/<name>``)."""
    return (NETNS_RUN_DIR / name).exists()


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_RUN_DIR / name).st_ino
    except OSError:
        return None


def netns_pids(name: str) -> list[int]:
    """PIDs of processes whose network namespace is ``name``."""
    ino = _netns_inode(name)
    if ino is None:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino == ino:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _enter_netns(name: str) -> None:
    """preexec_fn: move the child into ``name`` (no create)."""
    from pyroute2 import netns  # noqa: PLC0415

    netns.setns(name, flags=0)


def _write_sysctl(ns: str, path: str, value: str) -> None:
    """Write /proc/sys/<path> as seen from namespace ``ns`` (restores this thread's netns)."""
    from pyroute2 import netns  # noqa: PLC0415

    netns.pushns(ns)
    try:
        Path("/proc/sys", path).write_text(value)
    except FileNotFoundError:
        pass  # IPv6 not built into this kernel: nothing to silence
    finally:
        netns.popns()


def create_netns(name: str, ipv6: bool = False) -> None:
    """Create network namespace ``name``; refuse a name that exists (it is left alone).

    Args:
        ipv6: keep IPv6 (without duplicate address detection, so addresses are usable at
            once); by default IPv6 is disabled before any link exists (no autoconf, no MLD).

    Raises:
        TopologyError: the name is taken.
    """
    from pyroute2 import netns  # noqa: PLC0415

    if netns_exists(name):
        raise TopologyError(
            f"network namespace {name!r} already exists",
            hint=f"remove it with `ip netns del {name}` if it is a leftover, or choose other names",
        )
    netns.create(name)
    register_netns(name)
    done = False
    try:
        for knob in ("all", "default"):
            if ipv6:
                _write_sysctl(name, f"net/ipv6/conf/{knob}/accept_dad", "0")
            else:
                _write_sysctl(name, f"net/ipv6/conf/{knob}/disable_ipv6", "1")
        done = True
    finally:
        if not done:  # never leave a half-made namespace behind
            remove_netns(name)


def remove_netns(name: str) -> None:
    """SIGKILL every process still in namespace ``name``, then remove it (a missing one is fine)."""
    from pyroute2 import netns  # noqa: PLC0415

    for pid in netns_pids(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        netns.remove(name)
    except OSError:
        pass


class TwoNodeTopology:
    """An ``injector`` and a ``node`` namespace joined by a veth pair.

    Args:
        injector: name of the injector's namespace.
        node: name of the node's namespace.
        injector_if: the injector's interface name (the seed's ``eno1``).
        node_if: the node's interface name (the seed's ``enp1s0``).
        node_mac: the node interface's MAC (the seed's 52:54:00:84:d7:ff).
        injector_mac: the injector interface's MAC; the kernel picks one if None.

    Use as a context manager, or call :meth:`create` and then :meth:`destroy` in a
    ``finally``. Raises :class:`TopologyError` when a namespace name is already taken.
    """

    def __init__(self, injector: str = "injector", node: str = "node", injector_if: str = "eno1",
                 node_if: str = "enp1s0", node_mac: str = "52:54:00:84:d7:ff",
                 injector_mac: str | None = None) -> None:
        self.injector = injector
        self.node = node
        self.injector_if = injector_if
        self.node_if = node_if
        self.node_mac = node_mac
        self.injector_mac = injector_mac
        self._created: list[str] = []
        self._procs: list[subprocess.Popen] = []

    @classmethod
    def unique(cls, prefix: str = "pfrps", **kwargs) -> "TwoNodeTopology":
        """A topology whose namespace names carry a random suffix (for tests and benchmarks)."""
        sfx = unique_suffix()
        return cls(injector=f"{prefix}-inj-{sfx}", node=f"{prefix}-node-{sfx}", **kwargs)

    @property
    def namespaces(self) -> tuple[str, str]:
        """``(injector, node)`` namespace names."""
        return self.injector, self.node

    def create(self) -> "TwoNodeTopology":
        """Create both namespaces and the veth pair; bring the links up.

        Raises:
            TopologyError: a namespace of that name exists (it is left alone).
        """
        from pyroute2 import IPRoute  # noqa: PLC0415

        for name in self.namespaces:
            if netns_exists(name):
                create_netns(name)  # raises TopologyError: the name is taken
        with self._undo_on_error("the test topology", "run as root on a kernel with veth and network namespaces"):
            for name in self.namespaces:
                create_netns(name)
                self._created.append(name)
            with IPRoute(netns=self.injector, flags=0) as ipr:
                spec = {"ifname": self.injector_if, "kind": "veth",
                        "peer": {"ifname": self.node_if, "net_ns_fd": self.node, "address": self.node_mac}}
                if self.injector_mac:
                    spec["address"] = self.injector_mac
                ipr.link("add", **spec)
                idx = ipr.link_lookup(ifname=self.injector_if)[0]
                ipr.link("set", index=idx, state="up")
                self.injector_mac = ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")
            with IPRoute(netns=self.node, flags=0) as ipr:
                idx = ipr.link_lookup(ifname=self.node_if)[0]
                ipr.link("set", index=idx, state="up")
        return self

    @contextlib.contextmanager
    def _undo_on_error(self, what: str, hint: str) -> Iterator[None]:
        """For :meth:`create` (and a subclass's): if the block fails, :meth:`destroy` what was made
        so far, then re-raise a TopologyError as it is and anything else as
        ``TopologyError("cannot build <what>: ...", EIO, hint)``."""
        try:
            yield
        except TopologyError:
            self.destroy()
            raise
        except Exception as exc:
            self.destroy()
            raise TopologyError(f"cannot build {what}: {exc}", code=errno.EIO, hint=hint) from None

    def add_port(self, injector: str, injector_if: str, node_if: str, node_mac: str) -> str:
        """Another access port of a created topology: a new ``injector`` namespace joined to the
        node by a veth pair (``injector_if`` there, ``node_if``/``node_mac`` in the node), both
        up; :meth:`destroy` removes it with the rest (several ports: ``pfrps -i A -i B``).

        Returns:
            The new injector interface's MAC.

        Raises:
            TopologyError: the name is taken, or the link could not be made.
        """
        from pyroute2 import IPRoute  # noqa: PLC0415

        create_netns(injector)
        self._created.append(injector)
        try:
            with IPRoute(netns=injector, flags=0) as ipr:
                ipr.link("add", ifname=injector_if, kind="veth",
                         peer={"ifname": node_if, "net_ns_fd": self.node, "address": node_mac})
                idx = ipr.link_lookup(ifname=injector_if)[0]
                ipr.link("set", index=idx, state="up")
                mac = ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")
            with IPRoute(netns=self.node, flags=0) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=node_if)[0], state="up")
        except Exception as exc:
            raise TopologyError(f"cannot add port {node_if}: {exc}", code=errno.EIO,
                                hint="run as root on a kernel with veth and network namespaces") from None
        return mac

    def popen(self, ns: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside namespace ``ns`` (one of :attr:`namespaces`); :meth:`destroy` ends it."""
        if ns not in self._created:
            raise TopologyError(f"namespace {ns!r} is not part of this topology", code=errno.ENOENT)
        proc = subprocess.Popen(list(argv), preexec_fn=lambda: _enter_netns(ns), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, ns: str, argv: Sequence[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` in namespace ``ns`` to completion (``subprocess.run`` semantics)."""
        proc = self.popen(ns, argv, **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def destroy(self) -> None:
        """End the processes started in the namespaces and remove every namespace created."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        for name in reversed(self._created):
            remove_netns(name)
        self._created.clear()

    def __enter__(self) -> "TwoNodeTopology":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.destroy()
