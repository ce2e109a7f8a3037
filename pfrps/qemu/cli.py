"""``./run qemu``: the seed's two-node topology on two QEMU guests.

Builds or reuses the guest image (:mod:`pfrps.qemu.image`), boots ``node`` (enp1s0,
52:54:00:84:d7:ff) and ``injector`` (eno1) on one link (:mod:`pfrps.qemu.machine`), runs
``pfrps -i enp1s0 -w 8`` in the node and ``pfinject -i eno1 -d 52:54:00:84:d7:ff -p 25000`` in
the injector (:mod:`pfrps.qemu.guest`), shows the node's per-second lines live until
``total:25000``, then the native-XDP check, and exits 0 when every check passed (1 when one
failed, 2 for bad input or a second run while one is running). Interrupted or timed out, it
kills both guests; no QEMU process, tap, namespace or socket file outlives it.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..cliutil import ArgumentParser, int_range, positive_seconds
from ..errors import PfrpsError, PrivilegeError, UsageError
from ..hashing import parse_hash_alg
from ..kernel import PR_SET_PDEATHSIG
from ..topology import unique_suffix
from .guest import parse_seed_line
from .image import CACHE_DIR, ensure_image, checkout_root
from .machine import GUEST_SCRIPT, LINKS, NODE_MAC, GuestSpec, choose_accel, cpu_flags, guest_argv, kvm_usable, probe_kvm

__all__ = ["main", "RunLock", "RunError", "read_results", "Tail", "PREFIX", "find_qemu", "boot_guests",
           "wait_guests", "verdict", "add_link_options", "add_guest_options", "add_cache_options"]

PREFIX = "px9"
RUN_DIR = Path("/run/pfrps-qemu")
#: Frames a tap queues towards its guest before dropping (default 1000): a TCG guest drains
#: slowly, and 1000 lost 18% of a 3000-frame burst here in the XDP phase.
TAP_TXQLEN = 10000
EPILOG = """\
examples:
  ./run qemu                          # 8 workers, 25000 frames, then the native-XDP check
  ./run qemu -w 4 -p 2000 -a mac_jhash --steering filter --seed 7
  ./run qemu --link tap               # taps on a bridge in a private namespace, multi-queue virtio-net
  ./run qemu --shell node             # a root shell in the node (the injector runs its part)
  ./run qemu --rebuild-image          # build the guest image again
"""


class RunError(PfrpsError):
    """The run failed (a guest check, a timeout, a guest that died): exit status 1."""


class RunLock:
    """An exclusive ``flock`` on ``path`` holding the owner's pid, so a second run is refused.

    Raises (from :meth:`acquire`):
        UsageError: another run holds it (its pid named), exit status 2.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"another ./run qemu is running (pid {owner}, lock {self.path})", code=errno.EBUSY,
                             hint=f"wait for it to finish or stop it with kill {owner}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


class Tail:
    """New complete lines of a file another process appends to (a guest's output on 9p)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.partial = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        self.pos += len(data)
        data = self.partial + data
        *done, self.partial = data.split(b"\n")
        return [d.decode(errors="replace") for d in done]


def read_results(results: Path, names: Sequence[str] = ("node", "injector")) -> dict:
    """The guests' results: ``{name: {"status": int|None, "out": [lines], "last": ([counts], total)|None}}``
    plus ``"node_json"`` (the node's report, or None). A status is None when the guest never
    wrote one (it crashed, timed out or was killed)."""
    res: dict = {}
    for name in names:
        try:
            status: Optional[int] = int((results / f"{name}.status").read_text().strip())
        except (OSError, ValueError):
            status = None
        try:
            out = (results / f"{name}.out").read_text(errors="replace").splitlines()
        except OSError:
            out = []
        last = None
        for line in out:
            parsed = parse_seed_line(line)
            if parsed:
                last = parsed
        res[name] = {"status": status, "out": out, "last": last}
    try:
        res["node_json"] = json.loads((results / "node.json").read_text())
    except (OSError, ValueError):
        res["node_json"] = None
    return res


def _serial_tail(path: Optional[Path], n: int = 12) -> list[str]:
    if path is None:
        return []
    try:
        text = path.read_bytes().decode(errors="replace").replace("\r", "")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-n:]


_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(netns: Optional[str]):
    """preexec_fn: die with the runner (PR_SET_PDEATHSIG), and enter ``netns`` when given."""
    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if netns:
            from pyroute2 import netns as pnetns
            pnetns.setns(netns)
    return setup


class TapLink:
    """The tap link: a private namespace ``px9-<suffix>`` with a bridge; QEMU (started inside it)
    creates each guest's multi-queue tap, which :meth:`enslave` then puts on the bridge with a
    queue of :data:`TAP_TXQLEN` frames. The taps
    go away with QEMU, the namespace with :meth:`destroy`."""

    def __init__(self, suffix: str) -> None:
        from pyroute2 import netns as pnetns
        self.name = f"{PREFIX}-{suffix}"
        self.taps = (f"{PREFIX}n{suffix[:6]}", f"{PREFIX}i{suffix[:6]}")
        pnetns.create(self.name)
        from ..topology import register_netns  # noqa: PLC0415

        register_netns(self.name)
        try:
            with self._ns() as ns:
                ns.link("add", ifname="br0", kind="bridge")
                ns.link("set", index=ns.link_lookup(ifname="br0")[0], state="up")
        except Exception:
            self.destroy()
            raise

    def _ns(self):
        from pyroute2 import NetNS
        return NetNS(self.name)

    def enslave(self, timeout: float = 60.0, alive=lambda: True) -> None:
        """Wait until QEMU created both taps, then put them on the bridge, up."""
        end = time.monotonic() + timeout
        with self._ns() as ns:
            br = ns.link_lookup(ifname="br0")[0]
            for tap in self.taps:
                while not ns.link_lookup(ifname=tap):
                    if time.monotonic() > end or not alive():
                        raise RunError(f"QEMU did not create the tap {tap} within {timeout:.0f} s",
                                       hint="look at the QEMU log printed above")
                    time.sleep(0.05)
                idx = ns.link_lookup(ifname=tap)[0]
                ns.link("set", index=idx, master=br, state="up", txqlen=TAP_TXQLEN)

    def destroy(self) -> None:
        from pyroute2 import netns as pnetns
        try:
            pnetns.remove(self.name)
        except OSError:
            pass


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="pfrps-qemu", description=__doc__.split("\n\n")[0],
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--worker-count", dest="workers", type=int_range(1, 1024, "worker count"), default=8,
                   help="pfrps workers in the node (default: 8)")
    p.add_argument("-p", "--pkt-count", dest="frames", type=int_range(1, 10_000_000, "frame count"), default=25000,
                   help="frames the injector sends, per phase (default: 25000)")
    p.add_argument("-a", "--hash-alg", default="0", help="hash algorithm: 0/mac_hash, 1/mac_jhash, 2/jhash_oaat (default: 0)")
    p.add_argument("--steering", choices=("fanout", "filter", "hash"), default=None,
                   help="pfrps's steering mode (default: pfrps's, fanout)")
    p.add_argument("--seed", type=int, default=None,
                   help="pfinject's MAC seed (the XDP phase uses seed+1; default: random)")
    p.add_argument("--rate", type=float, default=5000.0,
                   help="injection rate in frames/s, so the per-second lines show the split growing "
                        "(default: 5000; 0 = as fast as the guest can)")
    add_link_options(p, queues_note=", what native XDP wants")
    p.add_argument("--no-xdp", dest="xdp", action="store_false", help="skip the native-XDP check")
    add_guest_options(p, timeout=900.0)
    add_cache_options(p, run_dir_help=f"lock file and per-run folders: sockets, results, serial logs "
                                      f"(default: {RUN_DIR})")
    return p


def add_link_options(p: argparse.ArgumentParser, queues_note: str = "") -> None:
    """``--link`` (dgram or tap) and ``--queues``, the options :func:`boot_guests` reads for the
    link; ``queues_note`` ends the ``--queues`` default's help text."""
    p.add_argument("--link", choices=LINKS, default="dgram",
                   help="dgram: -netdev dgram over two unix sockets (default); tap: taps on a bridge in a "
                        "private namespace, multi-queue virtio-net")
    p.add_argument("--queues", type=int_range(1, 16, "queue count"), default=None,
                   help=f"tap link: queue pairs per NIC (default: 2 x --smp{queues_note})")


def add_guest_options(p: argparse.ArgumentParser, timeout: float) -> None:
    """``--accel``, ``--smp``, ``--memory``, ``--timeout`` (default ``timeout`` seconds, whole)
    and ``--shell``, the options :func:`boot_guests` reads for the guests."""
    p.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto",
                   help="auto: KVM only with vmx/svm and a successful probe boot, else TCG (default)")
    p.add_argument("--smp", type=int_range(1, 8, "vCPU count"), default=2, help="vCPUs per guest (default: 2)")
    p.add_argument("--memory", type=int_range(512, 16384, "memory"), default=1024, help="MiB per guest (default: 1024)")
    p.add_argument("--timeout", type=positive_seconds, default=timeout,
                   help=f"seconds the guests may take from boot to power-off (default: {timeout:.0f})")
    p.add_argument("--shell", choices=("node", "injector"), default=None,
                   help="a root shell on this guest's console (the other runs its part); poweroff ends the run")


def add_cache_options(p: argparse.ArgumentParser, run_dir_help: str) -> None:
    """``--rebuild-image``, ``--cache-dir`` and ``--run-dir`` (its help text ``run_dir_help``),
    the options :func:`boot_guests` reads for the image and the run folders."""
    p.add_argument("--rebuild-image", action="store_true", help="build the guest image again")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=f"image cache (default: {CACHE_DIR})")
    p.add_argument("--run-dir", type=Path, default=RUN_DIR, help=run_dir_help)


def _say(text: str) -> None:
    print(text, flush=True)


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    end = time.monotonic() + 10
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_qemu() -> str:
    """The path of ``qemu-system-x86_64``.

    Raises:
        UsageError: it is not installed (ENOENT), exit status 2.
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise UsageError("qemu-system-x86_64 is not installed", code=errno.ENOENT,
                         hint="run tools/setup-host.sh (./run setup), which installs qemu-system-x86")
    return qemu


#: ``follow(procs, specs, rundir, results, t_boot, t0, build_seconds, accel) -> exit status``: what a
#: runner does once both guests booted (see :func:`boot_guests`).
Follow = Callable[[dict, dict, Path, Path, float, float, float, str], int]


def boot_guests(args: argparse.Namespace, qemu: str, cfg: dict, *, topology: Callable[[str], str], script: str,
                follow: Follow, edit_argv: Callable[[list[str]], list[str]] = list, shell_note: str = "",
                say_dgram: bool = True) -> int:
    """The part of a run every QEMU runner shares, called with the lock held: sweep stale runs,
    ensure the image, choose the accelerator, make the run folder ``run_dir/px9-<suffix>`` with
    ``results/run.json`` (``cfg``), start ``node`` (enp1s0, :data:`NODE_MAC`) and ``injector``
    (eno1, a random 52:54:00 MAC) on the ``--link`` of ``args``, then ``follow(...)`` (or wait
    for ``--shell``'s guest); whatever happens, stop both QEMU processes, remove the tap link's
    namespace, keep the logs in ``cache_dir/last-run/`` and remove the run folder.

    ``topology(injector_mac)`` is the ``qemu: topology:`` line; ``edit_argv`` rewrites each
    guest's QEMU command line; ``script`` (the guest script the shell hint names) and
    ``shell_note`` make the ``--shell`` line; ``say_dgram`` prints the dgram link's sockets.
    ``args`` needs run_dir, cache_dir, rebuild_image, accel, link, queues, smp, memory, shell.

    Returns ``follow``'s exit status (0 for ``--shell``). Raises :class:`UsageError` (KVM asked
    for but unusable), :class:`RunError` (a tap QEMU did not create) or what ``follow`` raises.
    """
    sweep_stale(args.run_dir)
    t0 = time.monotonic()
    image = ensure_image(sys.executable, args.cache_dir, _say, rebuild=args.rebuild_image)
    _say(f"qemu: image {image.dir} ({'built in %.0f s' % image.build_seconds if image.build_seconds else 'cached'})")
    accel, why = choose_accel(cpu_flags(), kvm_usable(), lambda: probe_kvm(image.kernel, qemu=qemu), args.accel)
    if args.accel == "kvm" and accel != "kvm":
        raise UsageError(f"KVM is not usable here ({why})", code=errno.ENODEV, hint="use --accel auto or tcg")
    _say(f"qemu: accelerator {why}")

    suffix = unique_suffix()
    rundir = args.run_dir / f"{PREFIX}-{suffix}"
    results = rundir / "results"
    results.mkdir(parents=True)
    inj_mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
    queues = (args.queues or 2 * args.smp) if args.link == "tap" else 1
    (results / "run.json").write_text(json.dumps(cfg) + "\n")
    specs = {name: GuestSpec(name, mac, ifname, smp=args.smp, memory=args.memory,
                             serial=None if args.shell == name else rundir / f"{name}.serial",
                             shell=args.shell == name, queues=queues)
             for name, mac, ifname in (("node", NODE_MAC, "enp1s0"), ("injector", inj_mac, "eno1"))}
    tap = None
    procs: dict[str, subprocess.Popen] = {}
    try:
        if args.link == "tap":
            tap = TapLink(suffix)
            specs["node"].tap, specs["injector"].tap = tap.taps
            _say(f"qemu: link tap: {tap.taps[0]} and {tap.taps[1]} on br0 in namespace {tap.name}, "
                 f"{queues} queue pairs per NIC")
        else:
            specs["node"].sock, specs["node"].peer_sock = rundir / "node.sock", rundir / "injector.sock"
            specs["injector"].sock, specs["injector"].peer_sock = rundir / "injector.sock", rundir / "node.sock"
            if say_dgram:
                _say("qemu: link dgram: -netdev dgram over unix sockets " f"{rundir}/node.sock <-> injector.sock")
        _say(topology(inj_mac))
        t_boot = time.monotonic()
        for name, spec in specs.items():
            argv = edit_argv(guest_argv(spec, image.kernel, image.initrd, image.root, checkout_root(), results,
                                        accel, qemu))
            (rundir / f"{name}.argv").write_text(json.dumps(argv) + "\n")
            shell = args.shell == name
            log = None if shell else open(rundir / f"{name}.qemu.log", "wb")
            procs[name] = subprocess.Popen(argv, stdin=None if shell else subprocess.DEVNULL, stdout=log,
                                           stderr=None if shell else subprocess.STDOUT,
                                           start_new_session=not shell,
                                           preexec_fn=_child_setup(tap.name if tap else None))
            if log:
                log.close()
        if tap:
            tap.enslave(alive=lambda: all(p.poll() is None for p in procs.values()))
        _say(f"qemu: booting node and injector ({accel}); guest output follows")
        if args.shell:
            _say(f"qemu: {args.shell}: root shell on this terminal; {shell_note}'/mnt/src/{script} {args.shell}' "
                 "runs its part, poweroff ends the run (Ctrl-a x kills QEMU)")
            procs[args.shell].wait()
            return 0
        return follow(procs, specs, rundir, results, t_boot, t0, image.build_seconds, accel)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        _stop(procs)
        if tap:
            tap.destroy()
        _keep_logs(rundir, args.cache_dir)
        shutil.rmtree(rundir, ignore_errors=True)


def _echo(tails: dict[str, Tail], first_line: Optional[dict[str, float]] = None) -> None:
    """Print the guests' new output lines; note when each guest's first one came in ``first_line``."""
    for name, tail in tails.items():
        for line in tail.lines():
            if first_line is not None:
                first_line.setdefault(name, time.monotonic())
            _say(line)


def wait_guests(procs: dict[str, subprocess.Popen], specs: dict[str, GuestSpec], results: Path, t_boot: float,
                timeout: float, *, on_failure: Callable[[dict[str, Tail]], None],
                on_timeout: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Show both guests' output lines live until both QEMU processes ended. When a guest ended
    with a failed status, ``on_failure(tails)`` must stop the rest (the other guest would wait
    for it until its own timeout). Returns ``{name: time.monotonic() of its first line}``.

    Raises:
        RunError: ``timeout`` seconds after ``t_boot`` a guest still runs: both are stopped, the
            late ones' last serial lines go to stderr, ``on_timeout()`` runs, then it is raised.
    """
    tails = {name: Tail(results / f"{name}.out") for name in procs}
    first_line: dict[str, float] = {}
    deadline = t_boot + timeout
    while True:
        _echo(tails, first_line)
        done = {name: p.poll() is not None for name, p in procs.items()}
        if all(done.values()):
            break
        status = read_results(results)
        if any(done[n] and status[n]["status"] not in (0, None) for n in procs):
            on_failure(tails)
            continue
        if time.monotonic() > deadline:
            _stop(procs)
            late = [name for name in procs if not done[name]]
            for name in late:
                print(f"qemu: last serial lines of {name}:", file=sys.stderr)
                for ln in _serial_tail(specs[name].serial) or ["(nothing on its console yet)"]:
                    print(f"  {name}| {ln}", file=sys.stderr)
            on_timeout()
            raise RunError(f"the guests did not finish within {timeout:.0f} s ({' and '.join(late)} still "
                           "running); both were killed",
                           hint="look at the serial lines above; give more time with --timeout")
        time.sleep(0.2)
    _echo(tails)
    return first_line


def verdict(procs: dict[str, subprocess.Popen], specs: dict[str, GuestSpec], res: dict, first_line: dict[str, float],
            t_boot: float, t_end: float, t0: float, build_seconds: float, accel: str, cache_dir: Path) -> int:
    """Print the ``qemu: node status ...; times ...`` line from ``res`` (:func:`read_results`) and
    the times (``time.monotonic()`` seconds); returns 0 when both guests' status is 0.

    Raises:
        RunError: a guest powered off without a result or its part failed (each one named).
    """
    problems = []
    for name in procs:
        st = res[name]["status"]
        if st is None:
            problems.append(f"{name} powered off without a result (QEMU status {procs[name].returncode}); "
                            f"last serial lines: " + " | ".join(_serial_tail(specs[name].serial, 6)))
        elif st != 0:
            problems.append(f"{name}'s part failed with status {st}")
    boot = {n: first_line[n] - t_boot for n in first_line}
    _say(f"qemu: node status {res['node']['status']}, injector status {res['injector']['status']}; "
         f"times ({accel}): image build {build_seconds:.0f} s{' (cached)' if not build_seconds else ''}, "
         f"boot {boot.get('node', float('nan')):.1f} s (node) / {boot.get('injector', float('nan')):.1f} s "
         f"(injector), run {t_end - min(first_line.values(), default=t_boot):.1f} s, "
         f"{t_end - t0:.1f} s in all")
    if problems:
        raise RunError("; ".join(problems), hint=f"see the guests' output above and {cache_dir}/last-run/")
    return 0


def run(args: argparse.Namespace) -> int:
    """The whole run under the lock; raises :class:`RunError` for a failed check or timeout."""
    qemu = find_qemu()
    alg = parse_hash_alg(args.hash_alg)
    if not (checkout_root() / GUEST_SCRIPT).is_file():
        raise UsageError(f"no checkout at {checkout_root()} ({GUEST_SCRIPT} missing): the guests run pfrps from it",
                         code=errno.ENOENT, hint="run ./run qemu from a clone of the pfrps repository")
    cfg = {"workers": args.workers, "frames": args.frames, "hash_alg": alg, "steering": args.steering,
           "seed": args.seed, "rate": args.rate, "xdp": args.xdp, "node_if": "enp1s0", "injector_if": "eno1",
           "node_mac": NODE_MAC, "sync_timeout": min(300.0, args.timeout)}

    def topology(inj_mac: str) -> str:
        return (f"qemu: topology: injector/eno1 ({inj_mac}) <-{args.link}-> node/enp1s0 ({NODE_MAC}); "
                f"{args.smp} vCPUs, {args.memory} MiB each")

    def follow(procs, specs, rundir, results, t_boot, t0, build_seconds, accel) -> int:
        return _follow(args, procs, specs, rundir, results, t_boot, t0, build_seconds, accel)
    return boot_guests(args, qemu, cfg, topology=topology, script=GUEST_SCRIPT, follow=follow,
                       shell_note="the checkout is /mnt/src, ")

def sweep_stale(run_dir: Path) -> list[str]:
    """Remove what a run killed with SIGKILL left in ``run_dir`` (its ``px9-*`` folder with socket
    files, and the tap link's namespace of the same name); called with the lock held, so no run
    using them is alive (QEMU itself died with its runner: PR_SET_PDEATHSIG). Returns the names."""
    from pyroute2 import netns as pnetns
    gone = []
    for d in sorted(run_dir.glob(f"{PREFIX}-*")):
        shutil.rmtree(d, ignore_errors=True)
        if d.name in pnetns.listnetns():
            pnetns.remove(d.name)
        gone.append(d.name)
        _say(f"qemu: removed {d} (left by a run that was killed)")
    return gone


def _keep_logs(rundir: Path, cache: Path) -> None:
    """Copy the run's logs (not its sockets) to ``cache/last-run/`` for a look afterwards."""
    dest = cache / "last-run"
    shutil.rmtree(dest, ignore_errors=True)
    try:
        dest.mkdir(parents=True)
        for f in list(rundir.glob("*.serial")) + list(rundir.glob("*.log")) + list(rundir.glob("*.argv")) + \
                list((rundir / "results").glob("*")):
            if f.is_file():
                shutil.copy2(f, dest / f.name)
    except OSError:
        pass


def _follow(args, procs, specs, rundir: Path, results: Path, t_boot: float, t0: float,
            build_seconds: float, accel: str) -> int:
    first_line = wait_guests(procs, specs, results, t_boot, args.timeout, on_failure=lambda _tails: _stop(procs))
    t_end = time.monotonic()
    return verdict(procs, specs, read_results(results), first_line, t_boot, t_end, t0, build_seconds, accel,
                   args.cache_dir)

def main(argv: Optional[Sequence[str]] = None) -> int:
    """``./run qemu [options]``: 0 when every check passed, 1 when the run failed, 2 for bad input."""
    args = build_parser().parse_args(argv)

    def checks() -> None:
        if os.geteuid() != 0:
            raise PrivilegeError("./run qemu needs root (mmdebstrap, 9p shares, taps, namespaces)",
                                 hint="run it with sudo")
        _say(f"qemu: ./run qemu -w {args.workers} -p {args.frames} -a {args.hash_alg}"
             f"{' --steering ' + args.steering if args.steering else ''} --link {args.link} (pid {os.getpid()})")
    return run_locked(args.run_dir, checks, lambda: run(args))


def run_locked(run_dir: Path, checks: Callable[[], None], body: Callable[[], int]) -> int:
    """The frame every QEMU runner shares: SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt in
    this process (a forked helper just dies of them), ``checks()`` (bad input raises), one run
    at a time per ``run_dir`` (its lock), then ``body()``; a :class:`PfrpsError` is one line
    (exit 2 for bad input, 1 otherwise), an interrupt exit 130 with both guests stopped."""
    main_pid = os.getpid()

    def interrupted(signum, _frame):
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    lock = RunLock(run_dir / "lock")
    try:
        checks()
        lock.acquire()
        return body()
    except PfrpsError as exc:
        return exc.report("qemu")
    except KeyboardInterrupt:
        print("qemu: interrupted; both guests stopped", file=sys.stderr)
        return 130
    finally:
        for sig in old:
            signal.signal(sig, signal.SIG_IGN)
        lock.release()
        for sig, handler in old.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
