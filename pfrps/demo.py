"""The README's first command: the seed's two-node run, in network namespaces.

Builds ``injector`` (eno1) <-> ``node`` (enp1s0, 52:54:00:84:d7:ff), starts
``pfrps -i enp1s0 -w 8`` in ``node``, waits until every worker is ready (pfrps writes READY on
``--ready-fd``: no sleep), runs ``pfinject -i eno1 -d 52:54:00:84:d7:ff -p 25000`` in
``injector``, shows pfrps's per-second lines until total:25000, then stops pfrps and removes
the namespaces, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Optional, Sequence

from .cliutil import ArgumentParser, wait_ready
from .errors import PfrpsError
from .config import check_privileges
from .topology import TwoNodeTopology

__all__ = ["main"]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="pfrps-demo", description=__doc__.split("\n\n")[0],
                       epilog="examples:\n  ./run demo\n  ./run demo -w 4 -a mac_jhash --rate 0\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--worker-count", dest="workers", type=int, default=8, help="workers (default: 8)")
    p.add_argument("-p", "--pkt-count", dest="frames", type=int, default=25000, help="frames to inject (default: 25000)")
    p.add_argument("-a", "--hash-alg", default="0", help="hash algorithm (default: 0, mac_hash)")
    p.add_argument("--steering", default=None, help="filter or fanout (default: pfrps's, fanout)")
    p.add_argument("--rate", type=float, default=10000.0,
                   help="injection rate in frames/s, so the per-second lines show the split growing "
                        "(default: 10000; 0 = as fast as possible)")
    p.add_argument("--seed", type=int, default=None, help="pfinject's MAC seed (default: random)")
    p.add_argument("--injector-ns", default="injector", help="injector namespace name (default: injector)")
    p.add_argument("--node-ns", default="node", help="node namespace name (default: node)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; return 0 when pfrps saw every injected frame."""
    args = build_parser().parse_args(argv)
    py = sys.executable
    topo: Optional[TwoNodeTopology] = None

    main_pid = os.getpid()

    def interrupted(signum, _frame):
        if os.getpid() != main_pid:  # a helper child pyroute2 forked: die as the signal says
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        check_privileges()
        t_start = time.monotonic()
        topo = TwoNodeTopology(injector=args.injector_ns, node=args.node_ns).create()
        print(f"demo: topology up: {topo.injector}/{topo.injector_if} ({topo.injector_mac}) <-veth-> "
              f"{topo.node}/{topo.node_if} ({topo.node_mac})", flush=True)
        r, w = os.pipe()
        pfrps_argv = [py, "-m", "pfrps", "-i", topo.node_if, "-w", str(args.workers), "-a", args.hash_alg,
                      *(["--steering", args.steering] if args.steering else []),
                      "-c", str(args.frames), "--duration", "120", "--ready-fd", str(w)]
        print("demo: node$ pfrps " + " ".join(pfrps_argv[3:-2]), flush=True)
        t_launch = time.monotonic()
        pfrps = topo.popen(topo.node, pfrps_argv, pass_fds=(w,))
        os.close(w)
        ready = wait_ready(r, 60)  # closes r
        if not ready:
            status = pfrps.wait()
            print(f"demo: error: pfrps exited with status {status} before its workers were ready", file=sys.stderr)
            return status or 1
        print(f"demo: workers ready {time.monotonic() - t_launch:.3f} s after launch", flush=True)
        inj_argv = [py, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac, "-p", str(args.frames)]
        if args.rate:
            inj_argv += ["--rate", str(args.rate)]
        if args.seed is not None:
            inj_argv += ["--seed", str(args.seed)]
        print("demo: injector$ pfinject " + " ".join(inj_argv[3:]), flush=True)
        inj = topo.run(topo.injector, inj_argv, timeout=600)
        if inj.returncode != 0:
            pfrps.send_signal(signal.SIGINT)
            pfrps.wait()
            return inj.returncode
        status = pfrps.wait(timeout=130)
        print(f"demo: pfrps exited with status {status}; {time.monotonic() - t_start:.1f} s in all", flush=True)
        return status
    except PfrpsError as exc:
        return exc.report("demo")
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig in old:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if topo is not None:
            topo.destroy()
            print(f"demo: removed namespaces {topo.injector} and {topo.node}", flush=True)
        for sig, handler in old.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
