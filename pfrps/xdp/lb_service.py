"""One ``pfrps-xdp lb`` run: check and resolve the backends, load and attach the program, print
counters in the foreground, re-read the backends on SIGHUP (the Maglev table rewritten, established
flows kept), detach on SIGINT/SIGTERM/``--duration``."""

from __future__ import annotations

import logging
import signal
from typing import Sequence

from ..errors import PfrpsError, UsageError
from .counters import format_lines
from .lb_backends import Backend, check_vip, collect_backends, interface_mac, parse_ipv4, resolve_backends
from .lb_maps import LB_COUNTER_FIELDS, LoadBalancer

__all__ = ["LbService", "run_lb"]

log = logging.getLogger("pfrps.xdp")


class LbService:
    """One ``pfrps-xdp lb`` run: the program, its backend set, SIGHUP reloads, counter samples.

    Args:
        args: the parsed ``pfrps-xdp lb`` options (``backend``, ``backend_file``,
            ``resolve_timeout``, ``json``).
        lb: the loaded :class:`~pfrps.xdp.lb_maps.LoadBalancer`.
        ifname, ifindex: the LB's interface (backends are resolved on its link).
    """

    def __init__(self, args, lb: LoadBalancer, ifname: str, ifindex: int) -> None:
        self.args = args
        self.lb = lb
        self.ifname = ifname
        self.ifindex = ifindex
        self.backend_table = lb.backend_counters()
        self.backend_table.start()
        self._reloading = False

    def apply(self, backends: Sequence[Backend]) -> float:
        """Make ``backends`` (MACs resolved) the Maglev set and restart the per-backend counter
        table (new slots); returns the fraction of the table that moved (0..1).

        Raises:
            UsageError: from :meth:`LoadBalancer.set_backends`.
        """
        moved = self.lb.set_backends(backends)
        table = self.lb.backend_counters()
        table.start()
        self.backend_table = table
        return moved

    def on_sighup(self, _signum, _frame) -> None:
        """Re-read the backends (``--backend`` plus ``--backend-file``); keep the old set on error."""
        if self._reloading:
            return
        self._reloading = True
        try:
            wanted = collect_backends(self.args.backend, self.args.backend_file)
            backends = resolve_backends(self.ifname, self.ifindex, wanted, self.args.resolve_timeout)
            moved = self.apply(backends)
            log.info("SIGHUP: %d backends (%s); %.1f%% of the Maglev table moved, established flows kept",
                     len(backends), ", ".join(b.ip for b in backends), moved * 100)
        except PfrpsError as exc:
            log.error("SIGHUP: backends unchanged: %s", exc.one_line())
        finally:
            self._reloading = False

    def sample(self, action_sampler):
        """A sampler for :func:`~pfrps.xdp.runner.run_foreground`: ``action_sampler``'s result
        (the xdp_stats lines, or a dict with ``--json``) plus per-backend frames and bytes each way
        since the previous sample."""
        def sample(elapsed: float):
            actions = action_sampler(elapsed)
            rates = self.backend_table.rates()
            labels = self.backend_table.labels
            if self.args.json:
                per = {}
                for i, ip in enumerate(labels):
                    per[ip] = {f: int(rates.total[i, j]) for j, f in enumerate(LB_COUNTER_FIELDS)}
                    per[ip].update({f"{f}_per_s": round(float(rates.per_second[i, j]), 3)
                                    for j, f in enumerate(LB_COUNTER_FIELDS)})
                    per[ip]["in_maglev_table"] = ip in {b.ip for b in self.lb.backends}
                return {**actions, "backends": per}
            lines = list(actions)
            for cols, arrow in (((0, 2), "->"), ((2, 4), "<-")):
                sub = type(rates)(rates.period, rates.total[:, cols[0]:cols[1]], rates.delta[:, cols[0]:cols[1]],
                                  rates.per_second[:, cols[0]:cols[1]])
                lines += format_lines([f"{arrow} {ip}" for ip in labels], sub)
            return lines
        return sample


def run_lb(args) -> int:
    """``pfrps-xdp lb``: check, resolve, load, attach, run in the foreground, detach."""
    # SIGHUP's default action would kill the run with XDP attached: hold it from the start.
    early_hup: list[int] = []
    old = signal.signal(signal.SIGHUP, lambda signum, _frame: early_hup.append(signum))
    try:
        return _serve_lb(args, early_hup)
    finally:
        signal.signal(signal.SIGHUP, old)


def _serve_lb(args, early_hup: list[int]) -> int:
    from .attach import Attachments, resolve_ifindex  # noqa: PLC0415
    from .counters import sampler  # noqa: PLC0415
    from .runner import run_foreground, stats_table  # noqa: PLC0415

    ifname = args.interface
    ifindex = resolve_ifindex(ifname)
    vip = parse_ipv4(args.vip, "VIP", "give --vip as an IPv4 address such as 10.0.0.10")
    backends = collect_backends(args.backend, args.backend_file)
    check_vip(ifname, ifindex, vip)
    if args.resolve_timeout <= 0:
        raise UsageError(f"--resolve-timeout {args.resolve_timeout:g} is not positive", hint="give seconds, e.g. 3")
    backends = resolve_backends(ifname, ifindex, backends, args.resolve_timeout)
    lb_mac = interface_mac(ifname)
    att = Attachments()
    try:
        lb = LoadBalancer(vip, lb_mac, ports=args.port, ring_size=args.ring_size, max_flows=args.max_flows)
        att.callback(lb.close, "the load balancer's program and maps")
        svc = LbService(args, lb, ifname, ifindex)
        svc.apply(backends)
        att.xdp(ifname, lb.prog_fd, args.generic)
        actions = sampler(stats_table(lb.mod), args.json)
    except BaseException:
        att.close()
        raise
    signal.signal(signal.SIGHUP, svc.on_sighup)
    att.callback(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN), "SIGHUP handler")  # first undone
    if early_hup:
        svc.on_sighup(signal.SIGHUP, None)
    ports = ",".join(map(str, lb.ports)) or "every port"
    startup = (f"lb on {ifname} (ifindex {ifindex}), {'generic' if args.generic else 'native'} XDP: VIP {vip} "
               f"({ports}) -> {', '.join(str(b) for b in backends)}; Maglev table {args.ring_size}; "
               f"counters every {args.interval:g} s")
    return run_foreground(att, svc.sample(actions), interval=args.interval, duration=args.duration,
                          json=args.json, startup=startup, stop=args.stop)
