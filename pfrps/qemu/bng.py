"""``python -m pfrps.qemu.bng``: pfrps-bng in the node guest, Debian's pppd dialling it from the
injector guest (issue 14's acceptance run).

The same image, guests and link as ``./run qemu`` (:mod:`pfrps.qemu.cli`: lock, stale-run
sweep, timeout, Ctrl-C, logs in ``/var/cache/pfrps-qemu/last-run/``), the guests' kernel command
line naming ``pfrps/qemu/files/bng-run`` (:mod:`pfrps.qemu.bng_guest`) instead of ``guest-run``:

* node: ``pfrps-bng -i enp1s0 --uplink up0 -w 2 --pool 100.64.0.0/24 --ipv6-pool
  2001:db8:100::/56 --dns 192.0.2.53 --auth pap,chap --secrets FILE``, its XDP data plane in
  native mode on the virtio-net NIC; the uplink side is a namespace ``inet`` in the node behind
  the veth pair up0/inet0 (198.51.100.2, 2001:db8:ffff::2);
* injector: Debian's pppd with the kernel's PPPoE (``plugin pppoe.so``) dials once with PAP
  (user1), once with CHAP (user2): IPv4 from IPCP in the pool, a global IPv6 address by SLAAC
  from the BNG's RA in the session's /64, ``ping`` and ``ping -6`` to the inet namespace 3/3,
  ``pfrps-bng show sessions --json`` on the node lists exactly that one session and the XDP
  session maps hold entries; SIGTERM to pppd ends it, after which show sessions is empty and the
  maps hold none; finally SIGTERM to pfrps-bng (exit 0, no XDP program left).

Exit status 0 when every check in both guests passed, 1 when one failed (or a timeout), 2 for bad
input or a second run while one runs, 130 when interrupted. ``--report FILE`` writes both
guests' reports (checks, addresses, pings, sessions, pppd's debug log) as one JSON document.
``--server ac`` is the discovery-only check: ``pfrps-ac`` on the node, one pppd dial that must
get a PPPoE session id (its LCP then times out: pfrps-ac speaks no PPP).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ..cliutil import ArgumentParser, int_range, positive_seconds
from ..errors import PrivilegeError, UsageError
from ..topology import unique_suffix
from .cli import (PREFIX, RUN_DIR, RunError, TapLink, run_locked, Tail, _child_setup, _keep_logs, _serial_tail, _stop,
                  read_results, sweep_stale)
from .image import CACHE_DIR, checkout_root, ensure_image, script_path
from .machine import GUEST_SCRIPT, LINKS, NODE_MAC, GuestSpec, choose_accel, cpu_flags, guest_argv, kvm_usable, \
    probe_kvm

__all__ = ["main", "build_parser", "BNG_SCRIPT", "summary_lines"]

PROG = "pfrps-qemu-bng"
BNG_SCRIPT = script_path("bng-run")
EPILOG = """\
examples:
  python -m pfrps.qemu.bng                      # PAP and CHAP dials, ping and ping -6 through the BNG
  python -m pfrps.qemu.bng --auth chap          # the BNG offers CHAP only; one dial
  python -m pfrps.qemu.bng --generic            # the data plane in generic XDP (for comparison)
  python -m pfrps.qemu.bng --server ac          # discovery only, against pfrps-ac
  python -m pfrps.qemu.bng --shell injector     # a root shell in the injector (the node runs its part)
  python -m pfrps.qemu.bng --report out.json    # both guests' reports as one JSON document
"""


def _auth(text: str) -> str:
    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not methods or any(m not in ("pap", "chap") for m in methods) or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(f"--auth {text!r}: use pap, chap, pap,chap or chap,pap")
    return ",".join(methods)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--worker-count", dest="workers", type=int_range(1, 64, "worker count"), default=2,
                   help="pfrps-bng workers in the node (default: 2)")
    p.add_argument("--auth", type=_auth, default="pap,chap",
                   help="the BNG's --auth; one pppd dial per method, in this order (default: pap,chap)")
    p.add_argument("--server", choices=("bng", "ac"), default="bng",
                   help="bng: the whole run (default); ac: discovery only, pfrps-ac against one pppd dial")
    p.add_argument("--generic", action="store_true", help="pfrps-bng --generic (then native XDP is not checked)")
    p.add_argument("--link", choices=LINKS, default="dgram",
                   help="dgram: -netdev dgram over two unix sockets (default); tap: taps on a bridge in a "
                        "private namespace, multi-queue virtio-net")
    p.add_argument("--queues", type=int_range(1, 16, "queue count"), default=None,
                   help="tap link: queue pairs per NIC (default: 2 x --smp)")
    p.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto",
                   help="auto: KVM only with vmx/svm and a successful probe boot, else TCG (default)")
    p.add_argument("--smp", type=int_range(1, 8, "vCPU count"), default=2, help="vCPUs per guest (default: 2)")
    p.add_argument("--memory", type=int_range(512, 16384, "memory"), default=1024, help="MiB per guest (default: 1024)")
    p.add_argument("--timeout", type=positive_seconds, default=600.0,
                   help="seconds the guests may take from boot to power-off (default: 600)")
    p.add_argument("--shell", choices=("node", "injector"), default=None,
                   help="a root shell on this guest's console (the other runs its part); poweroff ends the run")
    p.add_argument("--report", type=Path, default=None, metavar="FILE",
                   help="write both guests' reports as one JSON document")
    p.add_argument("--rebuild-image", action="store_true", help="build the guest image again")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=f"image cache (default: {CACHE_DIR})")
    p.add_argument("--run-dir", type=Path, default=RUN_DIR,
                   help=f"lock file and per-run folders (default: {RUN_DIR}; the lock is ./run qemu's)")
    return p


def _say(text: str) -> None:
    print(text, flush=True)


def bng_argv(argv: list[str]) -> list[str]:
    """A guest's QEMU command line with ``pfrps.script=`` naming :data:`BNG_SCRIPT`."""
    out = list(argv)
    i = out.index("-append") + 1
    assert f"pfrps.script={GUEST_SCRIPT}" in out[i].split()
    out[i] = out[i].replace(f"pfrps.script={GUEST_SCRIPT}", f"pfrps.script={BNG_SCRIPT}")
    return out


def summary_lines(node: Optional[dict], injector: Optional[dict]) -> list[str]:
    """``bng: ...`` lines: one per dial, then every failed check."""
    lines = []
    for method, dial in ((injector or {}).get("dials") or {}).items():
        ndial = ((node or {}).get("dials") or {}).get(method, {})
        if "ipv4" not in dial:  # --server ac: discovery only
            lines.append(f"bng: {method}: discovery only: pppd got PPPoE session "
                         f"{(dial.get('pppd') or {}).get('session')}; pppd status {dial.get('pppd_status')}")
            continue
        p4, p6 = dial.get("ping4") or (0, 0), dial.get("ping6") or (0, 0)
        lines.append(f"bng: {method}: {dial.get('user')} ppp0 {' '.join(dial.get('ipv4') or ['no IPv4'])}, "
                     f"{' '.join(dial.get('ipv6') or ['no global IPv6'])}; up in {dial.get('up_seconds')} s; "
                     f"ping {p4[1]}/{p4[0]}, ping -6 {p6[1]}/{p6[0]}; sessions {len(ndial.get('sessions') or [])}, "
                     f"entries {ndial.get('entries_up')}; after hang-up {len(ndial.get('sessions_after') or [])} "
                     f"sessions, entries {ndial.get('entries_after')}; pppd status {dial.get('pppd_status')}")
    for who, rep in (("node", node), ("injector", injector)):
        if rep is None:
            lines.append(f"bng: FAILED: no report from the {who}")
            continue
        for c in rep.get("checks", []):
            if not c["ok"]:
                lines.append(f"bng: FAILED: {who} {c['name']}: {c['detail']}")
    return lines


def run(args: argparse.Namespace) -> int:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise UsageError("qemu-system-x86_64 is not installed", code=errno.ENOENT,
                         hint="run tools/setup-host.sh (./run setup), which installs qemu-system-x86")
    root = checkout_root()
    if not (root / BNG_SCRIPT).is_file():
        raise UsageError(f"no checkout at {root} ({BNG_SCRIPT} missing): the guests run pfrps from it",
                         code=errno.ENOENT, hint="run it from a clone of the pfrps repository")
    if args.server == "bng" and not (root / "pfrps" / "bng" / "cli.py").is_file():
        raise UsageError(f"pfrps-bng is not in the checkout {root} (pfrps/bng/cli.py missing)", code=errno.ENOENT,
                         hint="use --server ac for the discovery-only run")
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
    cfg = {"scenario": "bng", "server": args.server, "workers": args.workers, "auth": args.auth,
           "methods": args.auth.split(","), "generic": args.generic, "node_if": "enp1s0", "injector_if": "eno1",
           "node_mac": NODE_MAC, "sync_timeout": min(300.0, args.timeout)}
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
        _say(f"qemu: topology: injector/eno1 ({inj_mac}, pppd) <-{args.link}-> node/enp1s0 ({NODE_MAC}, "
             f"pfrps-{args.server}) | node/up0 198.51.100.1 <-veth-> inet/inet0 198.51.100.2; "
             f"{args.smp} vCPUs, {args.memory} MiB each")
        t_boot = time.monotonic()
        for name, spec in specs.items():
            argv = bng_argv(guest_argv(spec, image.kernel, image.initrd, image.root, root, results, accel, qemu))
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
            _say(f"qemu: {args.shell}: root shell on this terminal; '/mnt/src/{BNG_SCRIPT} {args.shell}' runs its "
                 "part, poweroff ends the run (Ctrl-a x kills QEMU)")
            procs[args.shell].wait()
            return 0
        return _follow(args, procs, specs, results, t_boot, t0, image.build_seconds, accel)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        _stop(procs)
        if tap:
            tap.destroy()
        _keep_logs(rundir, args.cache_dir)
        shutil.rmtree(rundir, ignore_errors=True)


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _follow(args, procs, specs, results: Path, t_boot: float, t0: float, build_seconds: float, accel: str) -> int:
    tails = {name: Tail(results / f"{name}.out") for name in procs}
    first_line: dict[str, float] = {}
    deadline = t_boot + args.timeout
    while True:
        for name, tail in tails.items():
            for line in tail.lines():
                first_line.setdefault(name, time.monotonic())
                _say(line)
        done = {name: p.poll() is not None for name, p in procs.items()}
        if all(done.values()):
            break
        status = read_results(results)
        if any(done[n] and status[n]["status"] not in (0, None) for n in procs):
            # the other guest would wait for a step the failed one never posts: give it a moment
            # to finish what it can report, then stop both
            grace = time.monotonic() + 30
            while time.monotonic() < grace and not all(p.poll() is not None for p in procs.values()):
                for name, tail in tails.items():
                    for line in tail.lines():
                        _say(line)
                time.sleep(0.2)
            _stop(procs)
            continue
        if time.monotonic() > deadline:
            _stop(procs)
            late = [name for name in procs if not done[name]]
            for name in late:
                print(f"qemu: last serial lines of {name}:", file=sys.stderr)
                for ln in _serial_tail(specs[name].serial) or ["(nothing on its console yet)"]:
                    print(f"  {name}| {ln}", file=sys.stderr)
            _write_report(args, results)
            raise RunError(f"the guests did not finish within {args.timeout:.0f} s ({' and '.join(late)} still "
                           "running); both were killed",
                           hint="look at the serial lines above; give more time with --timeout")
        time.sleep(0.2)
    for name, tail in tails.items():
        for line in tail.lines():
            _say(line)
    t_end = time.monotonic()
    res = read_results(results)
    node, injector = _write_report(args, results)
    for line in summary_lines(node, injector):
        _say(line)
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
        raise RunError("; ".join(problems), hint=f"see the guests' output above and {args.cache_dir}/last-run/")
    return 0


def _write_report(args, results: Path) -> tuple[Optional[dict], Optional[dict]]:
    node, injector = _read_json(results / "node.json"), _read_json(results / "injector.json")
    if args.report is not None:
        tmp = args.report.with_name(args.report.name + ".tmp")
        tmp.write_text(json.dumps({"node": node, "injector": injector}, indent=1) + "\n")
        os.rename(tmp, args.report)
    return node, injector


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m pfrps.qemu.bng [options]``: 0 when every check passed, 1 when one failed, 2 for bad input."""
    args = build_parser().parse_args(argv)

    def checks() -> None:
        if os.geteuid() != 0:
            raise PrivilegeError("python -m pfrps.qemu.bng needs root (mmdebstrap, 9p shares, taps, namespaces)",
                                 hint="run it with sudo")
        if args.report is not None and not args.report.parent.is_dir():
            raise UsageError(f"--report {args.report}: no folder {args.report.parent}", code=errno.ENOENT,
                             hint="name a file in an existing folder")
        _say(f"qemu: python -m pfrps.qemu.bng -w {args.workers} --auth {args.auth} --server {args.server}"
             f"{' --generic' if args.generic else ''} --link {args.link} (pid {os.getpid()})")
    return run_locked(args.run_dir, checks, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
