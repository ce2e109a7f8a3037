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
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ..cliutil import ArgumentParser, int_range
from ..errors import PrivilegeError, UsageError
from .cli import (RUN_DIR, _echo, _say, _stop, add_cache_options, add_guest_options, add_link_options, boot_guests,
                  find_qemu, read_results, run_locked, verdict, wait_guests)
from .image import checkout_root, script_path
from .machine import GUEST_SCRIPT, NODE_MAC

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
    add_link_options(p)
    add_guest_options(p, timeout=600.0)
    p.add_argument("--report", type=Path, default=None, metavar="FILE",
                   help="write both guests' reports as one JSON document")
    add_cache_options(p, run_dir_help=f"lock file and per-run folders (default: {RUN_DIR}; the lock is ./run qemu's)")
    return p


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
    qemu = find_qemu()
    root = checkout_root()
    if not (root / BNG_SCRIPT).is_file():
        raise UsageError(f"no checkout at {root} ({BNG_SCRIPT} missing): the guests run pfrps from it",
                         code=errno.ENOENT, hint="run it from a clone of the pfrps repository")
    if args.server == "bng" and not (root / "pfrps" / "bng" / "cli.py").is_file():
        raise UsageError(f"pfrps-bng is not in the checkout {root} (pfrps/bng/cli.py missing)", code=errno.ENOENT,
                         hint="use --server ac for the discovery-only run")
    cfg = {"scenario": "bng", "server": args.server, "workers": args.workers, "auth": args.auth,
           "methods": args.auth.split(","), "generic": args.generic, "node_if": "enp1s0", "injector_if": "eno1",
           "node_mac": NODE_MAC, "sync_timeout": min(300.0, args.timeout)}

    def topology(inj_mac: str) -> str:
        return (f"qemu: topology: injector/eno1 ({inj_mac}, pppd) <-{args.link}-> node/enp1s0 ({NODE_MAC}, "
                f"pfrps-{args.server}) | node/up0 198.51.100.1 <-veth-> inet/inet0 198.51.100.2; "
                f"{args.smp} vCPUs, {args.memory} MiB each")

    def follow(procs, specs, _rundir, results, t_boot, t0, build_seconds, accel) -> int:
        return _follow(args, procs, specs, results, t_boot, t0, build_seconds, accel)
    return boot_guests(args, qemu, cfg, topology=topology, script=BNG_SCRIPT, follow=follow, edit_argv=bng_argv,
                       say_dgram=False)

def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _follow(args, procs, specs, results: Path, t_boot: float, t0: float, build_seconds: float, accel: str) -> int:
    def on_failure(tails) -> None:
        # the other guest would wait for a step the failed one never posts: give it a moment
        # to finish what it can report, then stop both
        grace = time.monotonic() + 30
        while time.monotonic() < grace and not all(p.poll() is not None for p in procs.values()):
            _echo(tails)
            time.sleep(0.2)
        _stop(procs)

    first_line = wait_guests(procs, specs, results, t_boot, args.timeout, on_failure=on_failure,
                             on_timeout=lambda: _write_report(args, results))
    t_end = time.monotonic()
    res = read_results(results)
    node, injector = _write_report(args, results)
    for line in summary_lines(node, injector):
        _say(line)
    return verdict(procs, specs, res, first_line, t_boot, t_end, t0, build_seconds, accel, args.cache_dir)

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
