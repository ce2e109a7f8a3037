"""``pfrps``: steer PF_PACKET frames across worker processes by source-MAC hash."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .cliutil import (ArgumentParser, add_metrics_option, human_bytes, int_range, positive_seconds, run_tool,
                      seconds_or_off, setup_logging, signal_ready)
from .config import MAX_WORKERS, RX_MODES, STEERING_MODES, SupervisorConfig, parse_cpus
from .errors import UsageError
from .hashing import parse_hash_alg
from .kernel import ETH_P_PPP_DISC, ETH_P_PPP_SES
from .logs import reopen_log_files
from .privileges import CAP_CHOWN, SUPERVISOR_CAPS, lookup_user, unreachable_dir
from .supervisor import Supervisor

# ArgumentParser, int_range, positive_seconds, setup_logging and signal_ready live in
# pfrps.cliutil; they stay importable from here for existing callers.
__all__ = ["main", "parse_ethertypes", "build_parser"]

ETHERTYPE_NAMES = {
    "pppoe": (ETH_P_PPP_DISC, ETH_P_PPP_SES),
    "pppoe-discovery": (ETH_P_PPP_DISC,),
    "pppoe-session": (ETH_P_PPP_SES,),
    "ipv4": (0x0800,),
    "arp": (0x0806,),
    "ipv6": (0x86DD,),
}

EPILOG = """\
examples:
  pfrps -i enp1s0 -w 8                 # 8 workers, PPPoE discovery+session frames, mac_hash
  pfrps -i enp1s0 -w 8 -a mac_jhash    # hash with the kernel's jhash_2words
  pfrps -i enp1s0 -w 6 -e all --json   # every frame, JSON lines
  pfrps -i enp1s0 -w 64 --steering fanout --rx ring --cpus 0-1
  pfrps -i enp1s0 -w 8 -c 25000        # stop after 25000 frames, like tcpdump -c
  pfrps -i enp1s0 -w 4 -b my_rps.bpf.c # your own steering program (keep pfrps_filter/pfrps_opts)
  pfrps -i enp1s0 -w 8 --user nobody --log-file /var/log/pfrps.log
  pfrps -i enp1s0 -w 8 --metrics 127.0.0.1:9464   # Prometheus scrapes http://127.0.0.1:9464/metrics
  pfrps -i eth1 -i eth2 -w 8           # two access ports, the same 8 workers, per-port figures
"""


def parse_ethertypes(text: str) -> tuple[int, ...]:
    """``0x8863,0x8864`` / ``pppoe`` / ``all`` -> ethertypes (host order); ``()`` means every frame.

    Raises:
        UsageError: not an ethertype (0x0600..0xffff) or a known name.
    """
    text = text.strip().lower()
    if text == "all":
        return ()
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part in ETHERTYPE_NAMES:
            out.extend(ETHERTYPE_NAMES[part])
            continue
        try:
            value = int(part, 0)
        except ValueError:
            value = -1
        if not 0x0600 <= value <= 0xFFFF:
            raise UsageError(f"bad ethertype {part!r}",
                             hint="give ethertypes 0x0600-0xffff (e.g. 0x8863,0x8864), a name (pppoe, ipv4, arp, ipv6) or 'all'")
        out.append(value)
    if not out:
        raise UsageError("no ethertype given", hint="use -e pppoe, -e 0x8863 or -e all")
    return tuple(dict.fromkeys(out))


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="pfrps",
        description="Spread PF_PACKET frames across worker processes by hashing the Ethernet source MAC "
                    "in an eBPF program: one subscriber, one worker, no locks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-i", "--bind-interface", "--interface", dest="interfaces", action="append", required=True,
                   metavar="IF", help="interface to receive on; repeat for several ports (-i eth1 -i eth2): "
                   "every worker reads each one, a source MAC lands on the same worker on every port")
    p.add_argument("-w", "--worker-count", dest="workers", type=int_range(1, MAX_WORKERS, "worker count"),
                   default=os.cpu_count() or 1, metavar="N",
                   help=f"worker processes, 1..{MAX_WORKERS} (default: CPUs, {os.cpu_count()})")
    p.add_argument("-a", "--hash-alg", dest="hash_alg", default="0", metavar="ALG",
                   help="0/mac_hash, 1/mac_jhash, 2/jhash_oaat (default: 0)")
    p.add_argument("-b", "--ebpf-rps", dest="program", type=Path, metavar="FILE",
                   help="BPF C file to use instead of the built-in steering program")
    p.add_argument("-e", "--ethertype", dest="ethertypes", default="pppoe", metavar="LIST",
                   help="ethertypes to receive: 0x8863,0x8864 (default: pppoe), names, or 'all'")
    p.add_argument("--steering", choices=STEERING_MODES, default=None,
                   help="fanout: one PACKET_FANOUT_EBPF program per frame, cost flat in N; filter: a socket filter "
                        "per worker (the seed's design), cost grows with N; hash: the kernel's flow hash, for "
                        "comparison (default: fanout, or filter when -b gives a socket filter)")
    p.add_argument("--rx", choices=RX_MODES, default="ring",
                   help="ring: TPACKET_V3 mmap ring, a block at a time; recv: one recvmsg per frame (default: ring)")
    p.add_argument("--ring-block-size", type=int_range(4096, 1 << 30, "ring block size"), default=None,
                   metavar="BYTES", help="TPACKET_V3 block size, a multiple of the page size "
                   "(default: 256 KiB up to 16 workers, 64 KiB up to 256, 16 KiB above)")
    p.add_argument("--ring-blocks", type=int_range(1, 1 << 16, "ring blocks"), default=None, metavar="N",
                   help="blocks per worker ring (default: 4 MiB / block size, 256 MiB in all above 64 workers; "
                        "memory per worker = blocks x block size)")
    p.add_argument("--ring-frame-size", type=int_range(16, 1 << 20, "ring frame size"), default=2048,
                   metavar="BYTES", help="TPACKET_V3 frame size hint, a multiple of 16 (default: 2048)")
    p.add_argument("--cpus", type=parse_cpus_arg, metavar="LIST", help="pin worker i to CPU LIST[i %% len], e.g. 0-1")
    p.add_argument("--rcvbuf", type=int_range(4096, 1 << 30, "receive buffer"), default=8 << 20, metavar="BYTES",
                   help="socket receive buffer per worker, recv mode (default: 8 MiB)")
    p.add_argument("-c", "--count", type=int_range(1, 1 << 62, "count"), metavar="FRAMES",
                   help="stop after this many frames in total")
    p.add_argument("--duration", type=positive_seconds, metavar="SECONDS", help="stop after this long")
    p.add_argument("--interval", type=positive_seconds, default=1.0, metavar="SECONDS",
                   help="seconds between stats lines (default: 1)")
    p.add_argument("--json", action="store_true", help="print stats as JSON lines")
    p.add_argument("--watchdog", type=seconds_or_off, default=10.0, metavar="SECONDS",
                   help="kill and restart a worker that has frames waiting and made no progress for this long, "
                        "its Python stack logged first (default: 10; 0 turns it off)")
    p.add_argument("--ready-fd", type=int_range(0, 1 << 20, "ready fd"), metavar="FD",
                   help="write 'READY\\n' to this fd when every worker is ready, then close it")
    p.add_argument("--user", metavar="NAME",
                   help="after sockets and BPF programs are in place, run workers as NAME with no capabilities")
    p.add_argument("--log-file", metavar="PATH", help="log to PATH instead of stderr; SIGHUP reopens it (logrotate)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level on stderr (default: info)")
    add_metrics_option(p)
    return p


def parse_cpus_arg(text: str) -> list[int]:
    try:
        return parse_cpus(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.one_line()) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pfrps``; return the exit status (0 ok, 1 runtime failure, 2 bad input)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_tool("pfrps", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    log = logging.getLogger("pfrps")
    if args.log_file:
        owner = lookup_user(args.user) if args.user else None
        if owner is not None:
            blocked = unreachable_dir(args.log_file, *owner)
            if blocked is not None:
                raise UsageError(
                    f"--user {args.user} cannot reach --log-file {args.log_file}: directory {blocked} "
                    "is not searchable by that user, so workers could not reopen the file after rotation",
                    hint=f"put the log file in a directory {args.user} can enter (e.g. /var/log/pfrps, mode 0755)")
        setup_logging(args.log_level, path=args.log_file, owner=owner)
    config = SupervisorConfig(
        interfaces=tuple(args.interfaces),
        workers=args.workers,
        hash_alg=parse_hash_alg(args.hash_alg),
        ethertypes=parse_ethertypes(args.ethertypes),
        steering=args.steering or ("filter" if args.program else "fanout"),
        program=args.program,
        rx=args.rx,
        rcvbuf=args.rcvbuf,
        ring_block_size=args.ring_block_size,
        ring_blocks=args.ring_blocks,
        ring_frame_size=args.ring_frame_size,
        cpus=args.cpus,
        user=args.user,
        supervisor_caps=SUPERVISOR_CAPS + ((CAP_CHOWN,) if args.log_file else ()),
        watchdog=args.watchdog,
        metrics=args.metrics,
    )
    if args.program is not None and not args.program.is_file():
        raise UsageError(f"BPF program {str(args.program)!r} not found",
                         hint="give -b the path of an existing .bpf.c file")
    config.validate()
    sup = Supervisor(config)
    try:
        seconds = sup.start()
        log.info("%s", sup.describe())
        log.info("%d workers ready in %.3f s (%s per worker); Hit Ctrl-C to end.", config.workers, seconds,
                 human_bytes(sup.ring_bytes_per_worker()))
        if sup.metrics_endpoint is not None:
            log.info("Prometheus metrics on %s", sup.metrics_endpoint.url)
        signal_ready(args.ready_fd)

        def emit() -> None:
            if args.json:
                from .stats import dumps  # noqa: PLC0415

                print(dumps(sup.snapshot()), flush=True)
            else:
                print(sup.line(), flush=True)

        def on_hup() -> None:
            reopen_log_files()
            if args.log_file and args.user:
                try:
                    os.chown(args.log_file, *lookup_user(args.user))
                except OSError as exc:
                    log.warning("cannot hand %s to %s: %s", args.log_file, args.user, exc.strerror)

        return sup.run(emit, interval=args.interval, duration=args.duration, count=args.count,
                       on_hup=on_hup)
    finally:
        sup.close()


if __name__ == "__main__":
    sys.exit(main())
