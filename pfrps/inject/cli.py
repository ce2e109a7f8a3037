"""``pfinject``: send the seed's PPPoE frames with per-frame source MACs."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import numpy as np

from ..cliutil import ArgumentParser, int_range, setup_logging
from ..errors import PfrpsError, UsageError
from ..hashing import parse_mac

from .frames import build_template, fill_frames
from .macs import MAC_SETS, mac_set
from .sender import Injector
from .txring import DEFAULT_BURST, DEFAULT_RING_FRAMES, send_parallel

__all__ = ["main"]

EPILOG = """\
examples:
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 25000            # the seed's run
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 25000 --seed 7   # the same MACs every time
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 1000000 --rate 100000
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 1000000 --procs 2   # two sending processes, one ring each
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 1000000 --tx send    # one send() per frame, no ring
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 8000 --macs stride --stride 8 --base 02:00:00:00:10:00
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 5000 --macs file --mac-file subscribers.txt
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 5000 --vlan 100         # 802.1Q-tagged PPPoE
  pfinject -i eno1 -d 52:54:00:84:d7:ff -p 5000 --qinq 10:100      # QinQ: S-tag 0x88a8 VID 10, C-tag VID 100
"""


def _vid(text: str) -> int:
    try:
        vid = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"VLAN id must be an integer, not {text!r}") from None
    if not 1 <= vid <= 4094:
        raise argparse.ArgumentTypeError(f"VLAN id {vid} is out of range 1..4094 (IEEE 802.1Q)")
    return vid


def _qinq(text: str) -> tuple[int, int]:
    outer, sep, inner = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"--qinq takes S-VID:C-VID, e.g. 10:100, not {text!r}")
    return _vid(outer), _vid(inner)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must be frames/s, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"rate {text} is negative")
    return value


def _positive(what: str, hi: int):
    def conv(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
        if not 1 <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} {value} is out of range 1..{hi}")
        return value
    return conv


def _mac(text: str) -> str:
    try:
        parse_mac(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.one_line()) from None
    return text


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="pfinject", description="Inject PPPoE discovery frames (the seed's 148-byte layout) "
                       "with a different source MAC per frame.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--bind-interface", "--interface", dest="interface", required=True, metavar="IF",
                   help="interface to send on")
    p.add_argument("-d", "--dest-mac", dest="dst", required=True, type=_mac, metavar="MAC",
                   help="destination MAC address")
    p.add_argument("-p", "--pkt-count", dest="count", type=int_range(1, 1 << 40, "frame count"), default=25000, metavar="N",
                   help="frames to send (default: 25000)")
    p.add_argument("--seed", type=int, help="seed of the random MAC sequence (reproducible runs)")
    p.add_argument("--rate", type=_rate, default=0.0, metavar="FPS", help="frames/s to hold (default: as fast as possible)")
    p.add_argument("--tx", choices=("ring", "send"), default="ring",
                   help="ring: a PACKET_TX_RING, one send() per burst; send: one send() per frame (default: ring)")
    p.add_argument("--burst", type=_positive("burst", 1 << 16), default=DEFAULT_BURST, metavar="N",
                   help=f"frames per send() with --tx ring (default: {DEFAULT_BURST}; --rate cuts bursts "
                        "to about 1 ms of frames)")
    p.add_argument("--ring-frames", type=_positive("ring size", 1 << 20), default=DEFAULT_RING_FRAMES, metavar="N",
                   help=f"slots in the transmit ring (default: {DEFAULT_RING_FRAMES})")
    p.add_argument("--procs", type=_positive("process count", 1024), default=1, metavar="N",
                   help="sending processes with --tx ring, one ring each, pinned to CPUs in turn; each sends "
                        "its share of the MACs at rate/N (default: 1)")
    p.add_argument("--qdisc-bypass", action="store_true",
                   help="hand frames straight to the driver (PACKET_QDISC_BYPASS), skipping the qdisc")
    p.add_argument("--macs", choices=MAC_SETS, default="random", help="source MAC set (default: random)")
    p.add_argument("--base", type=_mac, metavar="MAC", help="first MAC of --macs sequential/stride")
    p.add_argument("--stride", type=int, default=8, metavar="K", help="step of --macs stride (default: 8)")
    p.add_argument("--mac-file", metavar="PATH", help="file of MACs for --macs file, one per line")
    tags = p.add_mutually_exclusive_group()
    tags.add_argument("--vlan", type=_vid, metavar="VID", help="send the frames in an 802.1Q tag (TPID 0x8100)")
    tags.add_argument("--qinq", type=_qinq, metavar="S:C",
                      help="send the frames in QinQ: an 802.1ad S-tag (0x88a8, VID S) then an 802.1Q C-tag (VID C)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pfinject``; return the exit status (0 ok, 1 runtime failure, 2 bad input)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "pfinject")
    try:
        if args.procs > 1 and args.tx != "ring":
            raise UsageError("--procs needs --tx ring", hint="drop --procs or use --tx ring")
        macs = mac_set(args.macs, args.count, seed=args.seed, base=args.base, stride=args.stride,
                       path=args.mac_file)
        vlans = [(0x8100, args.vlan)] if args.vlan else [(0x88A8, args.qinq[0]), (0x8100, args.qinq[1])] \
            if args.qinq else []
        template = build_template(args.dst, vlans=vlans)
        seed = f", seed {args.seed}" if args.seed is not None else ""
        rate = f" at {args.rate:.0f} frames/s" if args.rate else ""
        tagged = (f" in 802.1Q VLAN {args.vlan}" if args.vlan else
                  f" in QinQ S-VLAN {args.qinq[0]} C-VLAN {args.qinq[1]}" if args.qinq else "")
        announce = (f"pfinject: sending {args.count} {len(template)}-byte PPPoE frames{tagged} to {args.dst} on "
                    f"{args.interface} from {args.macs} source MACs{seed}{rate}")
        if args.tx == "ring":
            res = send_parallel(args.interface, template, macs, procs=args.procs, rate=args.rate, burst=args.burst,
                                ring_frames=args.ring_frames, qdisc_bypass=args.qdisc_bypass,
                                on_ready=lambda: print(announce, file=sys.stderr, flush=True))
        else:
            buf = np.empty((min(args.count, 4096), len(template)), dtype=np.uint8)
            pos = 0

            def batches(n: int):
                nonlocal pos
                if pos >= args.count:
                    return None
                chunk = macs[pos:pos + min(n, buf.shape[0])]
                pos += len(chunk)
                return fill_frames(template, chunk, buf)

            with Injector(args.interface, qdisc_bypass=args.qdisc_bypass) as inj:
                print(announce, file=sys.stderr, flush=True)
                res = inj.send_batches(batches, rate=args.rate)
        print(f"pfinject: sent {res.frames} frames ({res.bytes} bytes) in {res.seconds:.3f} s: "
              f"{res.rate:.0f} frames/s", flush=True)
        return 0
    except PfrpsError as exc:
        return exc.report("pfinject")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
