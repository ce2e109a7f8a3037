"""``pfrps-xdp lab NAME``: the topologies of the XDP programs (router, broadcast switch, load
balancer, cloud host), built in namespaces and checked with real traffic.

:class:`Lab` is the base of every lab: it creates uniquely named network namespaces
(``add_ns``), veth pairs, addresses, routes, neighbours and sysctls with pyroute2, runs commands
(``run``/``popen``, and :meth:`Lab.start_xdp` for a ``pfrps-xdp`` subcommand, ready when its
startup line is printed) and Python functions (``call``: a forked child inside the namespace,
needed for DEVMAP writes and for test runs of redirecting programs) in them, prints one
``PASS name: detail`` / ``FAIL name: detail`` line per :meth:`Lab.check`, and removes
everything in :meth:`Lab.destroy`, also after SIGINT/SIGTERM. The labs are listed once, in
:data:`pfrps.xdp.cli.LABS`, and handed to :func:`register`; ``pfrps-xdp lab NAME`` exits 0 only
when every check passed. Nothing here touches the namespace the
command runs in: the seeds' "root namespace" roles are namespaces of their own.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import PfrpsError, TopologyError
from ..topology import _enter_netns, create_netns, remove_netns, unique_suffix

__all__ = ["Lab", "register", "call_in_netns", "LabCheck", "forwarded_datagrams",
           "last_json", "read_until"]

log = logging.getLogger("pfrps.xdp")

class LabInterrupted(PfrpsError):
    """SIGINT/SIGTERM arrived during a lab: stop taking steps, destroy, exit 1."""


class LabCheck(tuple):
    """``(name, ok, detail)`` of one check."""

    __slots__ = ()

    def __new__(cls, name: str, ok: bool, detail: str):
        return super().__new__(cls, (name, bool(ok), detail))


def read_until(stream, needle: str, timeout: float) -> tuple[bool, list[str]]:
    """Read lines from pipe ``stream`` until one contains ``needle`` (a readiness line), EOF or
    ``timeout`` seconds; return ``(found, every line read)``. Waits on select(2), never sleeps.

    Reads the pipe's fd directly (a text wrapper's buffer could hide a line from select), so
    call it before anything else read ``stream``; what it read is in the lines returned.
    """
    fd = stream.fileno()
    lines: list[str] = []
    rest = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        *done, rest = (rest + chunk).split(b"\n")
        lines.extend(d.decode(errors="replace") for d in done)
        if any(needle in line for line in lines):
            return True, lines + ([rest.decode(errors="replace")] if rest else [])
    return False, lines + ([rest.decode(errors="replace")] if rest else [])


def call_in_netns(ns: str, fn: Callable[..., Any], *args, timeout: float = 60) -> Any:
    """Run ``fn(*args)`` in a forked child that has entered network namespace ``ns``; return
    its (picklable) result, or raise the exception it raised.

    The child inherits open fds (BPF programs and maps loaded here), so a DEVMAP entry it
    writes is resolved in ``ns``, and a BPF_PROG_TEST_RUN of a redirecting program transmits
    into ``ns``, never into the caller's namespace.

    Raises:
        TopologyError: the child died without a result, or ran longer than ``timeout`` seconds.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        status = 0
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, signal.SIG_DFL)
            _enter_netns(ns)
            payload = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001  (handed to the parent, re-raised there)
            payload = (False, exc)
        try:
            data = pickle.dumps(payload)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            data = pickle.dumps((False, TopologyError(f"unpicklable result from {fn.__name__}: {exc}",
                                                      code=errno.EINVAL)))
        try:
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except OSError:
            status = 1
        os._exit(status)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise TopologyError(f"{fn.__name__} in namespace {ns} ran over {timeout:g} s", code=errno.ETIMEDOUT)
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not chunks:
        raise TopologyError(f"{fn.__name__} in namespace {ns} died without a result", code=errno.ECHILD)
    ok, value = pickle.loads(b"".join(chunks))
    if not ok:
        raise value
    return value


class Lab:
    """A topology of uniquely named namespaces, checked with traffic, always removed.

    Args:
        prefix: the start of every namespace name (``<prefix>-<role>-<8 hex>``).
        stop: the run's :class:`pfrps.xdp.runner.StopSignals`; a check sequence stops early
            (and the lab is destroyed) once it is set.
        out: where PASS/FAIL lines go (default stdout).

    Subclasses set :attr:`title`, may add options in :meth:`add_arguments`, and implement
    :meth:`build` (make the topology) and :meth:`checks` (send traffic, call :meth:`check`).
    """

    title = "lab"

    def __init__(self, prefix: str = "pfrps", stop=None, out=None) -> None:
        self.prefix = prefix
        self.suffix = unique_suffix()
        self.stop = stop
        self.out = out or sys.stdout
        self.namespaces: dict[str, str] = {}
        self.results: list[LabCheck] = []
        self._procs: list[subprocess.Popen] = []

    # -- options and the run ------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the lab's own options to its subparser (none by default)."""

    def build(self, args) -> None:
        """Create the topology (namespaces, links, addresses); subclasses implement it."""
        raise NotImplementedError

    def checks(self, args) -> None:
        """Send traffic and record checks; subclasses implement it."""
        raise NotImplementedError

    def execute(self, args) -> int:
        """Build, check, destroy (always); print a summary; 0 when every check passed, else 1."""
        t0 = time.monotonic()
        try:
            self.build(args)
            self.say(f"topology up: {', '.join(f'{r}={n}' for r, n in self.namespaces.items())}")
            self.checks(args)
        except LabInterrupted:
            pass
        finally:
            if self.stop is not None:
                self.stop.ignore()  # a second Ctrl-C must not cut the clean-up short
            self.destroy()
        passed = sum(ok for _, ok, _ in self.results)
        interrupted = " (interrupted)" if self.interrupted() else ""
        self.say(f"{passed}/{len(self.results)} checks passed in {time.monotonic() - t0:.1f} s{interrupted}; "
                 f"removed {len(self.namespaces)} namespaces")
        return 0 if self.results and passed == len(self.results) and not interrupted else 1

    def interrupted(self) -> bool:
        """True once SIGINT/SIGTERM arrived."""
        return bool(self.stop is not None and self.stop.stopped)

    def _guard(self) -> None:
        """Raise :class:`LabInterrupted` once SIGINT/SIGTERM arrived: the next step is not taken,
        :meth:`execute` goes straight to :meth:`destroy`."""
        if self.interrupted():
            raise LabInterrupted("interrupted", code=errno.EINTR)

    def say(self, text: str) -> None:
        """Print ``lab: text``."""
        print(f"lab: {text}", file=self.out, flush=True)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        """Record and print ``PASS name: detail`` or ``FAIL name: detail``; return ``ok``."""
        self._guard()
        self.results.append(LabCheck(name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", file=self.out, flush=True)
        return bool(ok)

    # -- topology -------------------------------------------------------------------------------
    def add_ns(self, role: str, ipv6: bool = False) -> str:
        """Create the namespace for ``role`` (``<prefix>-<role>-<suffix>``) and return its name.

        Raises:
            TopologyError: the name is taken.
        """
        self._guard()
        name = f"{self.prefix}-{role}-{self.suffix}"
        create_netns(name, ipv6=ipv6)
        self.namespaces[role] = name
        self._ipr_set(name, "lo", state="up")
        return name

    def ns(self, role: str) -> str:
        """The namespace name of ``role``."""
        return self.namespaces[role]

    def _ipr(self, ns: str):
        from pyroute2 import IPRoute  # noqa: PLC0415

        return IPRoute(netns=ns, flags=0)

    def _ipr_set(self, ns: str, ifname: str, **kw) -> None:
        with self._ipr(ns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], **kw)

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, mac_a: str | None = None,
             mac_b: str | None = None) -> None:
        """A veth pair ``ns_a/if_a <-> ns_b/if_b`` (namespace names), both ends up."""
        with self._ipr(ns_a) as ipr:
            spec: dict = {"ifname": if_a, "kind": "veth", "peer": {"ifname": if_b, "net_ns_fd": ns_b}}
            if mac_a:
                spec["address"] = mac_a
            if mac_b:
                spec["peer"]["address"] = mac_b
            ipr.link("add", **spec)
        self._ipr_set(ns_a, if_a, state="up")
        self._ipr_set(ns_b, if_b, state="up")

    def addr(self, ns: str, ifname: str, cidr: str) -> None:
        """Add address ``cidr`` (``10.0.0.1/24``, ``fd00::1/64``) to ``ns/ifname``."""
        address, plen = cidr.split("/")
        with self._ipr(ns) as ipr:
            ipr.addr("add", index=ipr.link_lookup(ifname=ifname)[0], address=address, prefixlen=int(plen))

    def route(self, ns: str, dst: str, gateway: str) -> None:
        """Add a route ``dst`` (``default`` or a CIDR; IPv6 when it has a ``:``) via ``gateway``."""
        from socket import AF_INET, AF_INET6  # noqa: PLC0415

        family = AF_INET6 if ":" in gateway else AF_INET
        kw: dict = {"gateway": gateway, "family": family}
        if dst != "default":
            kw["dst"] = dst
        else:
            kw["dst"] = "::/0" if family == AF_INET6 else "0.0.0.0/0"
        with self._ipr(ns) as ipr:
            ipr.route("add", **kw)

    def neigh(self, ns: str, ifname: str, ip: str, mac: str) -> None:
        """A permanent neighbour entry ``ip -> mac`` on ``ns/ifname``."""
        from socket import AF_INET, AF_INET6  # noqa: PLC0415

        with self._ipr(ns) as ipr:
            ipr.neigh("add", dst=ip, lladdr=mac, ifindex=ipr.link_lookup(ifname=ifname)[0], state=0x80,
                      family=AF_INET6 if ":" in ip else AF_INET)

    def sysctl(self, ns: str, path: str, value: str) -> None:
        """Write ``/proc/sys/<path>`` as seen from ``ns``."""
        from ..topology import _write_sysctl  # noqa: PLC0415

        _write_sysctl(ns, path, value)

    def rx_packets(self, ns: str, ifname: str) -> int:
        """Frames ``ns/ifname`` received (``IFLA_STATS64`` rx_packets, as ``ip -s link``;
        :func:`pfrps.links.rx_packets`)."""
        from ..links import rx_packets  # noqa: PLC0415

        return rx_packets(ifname, ns)

    def link(self, ns: str, ifname: str) -> tuple[int, str]:
        """``(ifindex, mac)`` of ``ns/ifname``."""
        with self._ipr(ns) as ipr:
            link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
        return int(link["index"]), link.get_attr("IFLA_ADDRESS")

    # -- processes ------------------------------------------------------------------------------
    def popen(self, ns: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` in namespace ``ns``; :meth:`destroy` ends it if still running."""
        self._guard()
        proc = subprocess.Popen(list(argv), preexec_fn=lambda: _enter_netns(ns), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, ns: str, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``argv`` in ``ns`` to completion, text output captured."""
        proc = self.popen(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def call(self, ns: str, fn: Callable[..., Any], *args) -> Any:
        """``fn(*args)`` in a forked child inside ``ns`` (:func:`call_in_netns`)."""
        self._guard()
        return call_in_netns(ns, fn, *args)

    def start_xdp(self, ns: str, *argv: str, timeout: float = 60) -> subprocess.Popen:
        """Start ``pfrps-xdp argv...`` in ``ns`` and return once its startup line (``Hit Ctrl-C``)
        is printed, i.e. everything is attached.

        Raises:
            TopologyError: it exited or did not get ready within ``timeout`` seconds (its
            error line is in the message).
        """
        proc = self.popen(ns, [sys.executable, "-m", "pfrps.xdp", *argv, "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, seen = read_until(proc.stderr, "Hit Ctrl-C to end.", timeout)
        if ready:
            return proc
        self.stop_xdp(proc)
        raise TopologyError(f"pfrps-xdp {' '.join(argv)} in {ns} did not start: {' | '.join(seen[-2:])}",
                            code=errno.EIO, hint="see its error above")

    @staticmethod
    def stop_xdp(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
        """SIGTERM a :meth:`start_xdp` process and return ``(status, stdout, stderr)``."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, out or "", err or ""

    def destroy(self) -> None:
        """End every process started (SIGTERM, so pfrps-xdp detaches), then remove every namespace."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            except ValueError:
                proc.wait()
        self._procs.clear()
        for name in reversed(list(self.namespaces.values())):
            remove_netns(name)


def last_json(stdout: str) -> dict:
    """The last JSON line a ``pfrps-xdp ... --json`` run printed (its final counters), or {}."""
    import json  # noqa: PLC0415

    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def register(subparsers, labs: dict[str, tuple[Sequence[str], type[Lab]]]) -> None:
    """Add ``pfrps-xdp lab NAME`` with one sub-subcommand per lab of ``labs``
    (``{name: (aliases, Lab subclass)}``, :func:`pfrps.xdp.cli.lab_classes`); an alias runs the
    same lab and sets ``args.lab`` to its name."""
    p = subparsers.add_parser(
        "lab", help="build a program's topology in fresh namespaces and check it with traffic",
        description="Build the topology in uniquely named namespaces (never touching this namespace), "
                    "load the programs, send real traffic, print PASS/FAIL per check, remove "
                    "everything. Exit 0 only when every check passed.",
        epilog="examples:\n  pfrps-xdp lab router --mode fib\n  pfrps-xdp lab switch --xdp\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="lab", required=True, metavar="NAME")
    for name, (aliases, cls) in labs.items():
        q = sub.add_parser(name, aliases=list(aliases), help=cls.title, description=cls.title)
        q.add_argument("--prefix", default="pfrps", help="namespace name prefix (default: pfrps)")
        q.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
        cls.add_arguments(q)
        q.set_defaults(lab=name, func=lambda args, _cls=cls: _run_lab(_cls, args))


def _run_lab(cls: type[Lab], args) -> int:
    return cls(prefix=args.prefix, stop=args.stop).execute(args)


def _proc_net_counter(path: str, table: str, field: str) -> int:
    """One counter of /proc/net/snmp-style ``path`` (``table`` header/values line pairs), or of
    /proc/net/snmp6 (``name value`` lines, ``table`` ignored), in this process's namespace."""
    lines = Path(path).read_text().splitlines()
    if path.endswith("snmp6"):
        for line in lines:
            name, _, value = line.partition(" ")
            if name == field:
                return int(value.split()[0])
        raise KeyError(field)
    rows = [ln.split() for ln in lines if ln.startswith(f"{table}:")]
    return int(rows[1][rows[0].index(field)])


def forwarded_datagrams() -> tuple[int, int]:
    """``(IPv4 ForwDatagrams, IPv6 Ip6OutForwDatagrams)`` of the namespace this runs in: what the
    kernel itself forwarded (``/proc/net/snmp``, ``/proc/net/snmp6``)."""
    v6 = _proc_net_counter("/proc/net/snmp6", "", "Ip6OutForwDatagrams") if Path("/proc/net/snmp6").exists() else 0
    return _proc_net_counter("/proc/net/snmp", "Ip", "ForwDatagrams"), v6
