"""Prometheus metrics: every counter pfrps keeps, served by the supervisor over HTTP.

``--metrics ADDR:PORT`` (``SupervisorConfig(metrics=(host, port))``) makes the supervisor serve
``/metrics`` with `prometheus_client`_: a custom collector (:class:`PfrpsCollector`) turns one
numpy snapshot of the shared-memory counters (:class:`pfrps.stats.SharedCounters`, the same
rows the per-second line and ``--json`` print) into metric families at scrape time. So a
scrape costs the workers nothing, and a restarted worker's counters go on from where they
were (gauges excepted: a restarted worker's sessions are gone, so they restart at 0).

Names follow Prometheus's conventions: counters end in ``_total``, every per-worker series has
``worker`` and ``interface`` labels (``pfrps_frames_total{worker="3",interface="eth1"}``), and
an application's counters and gauges are named after it (``SupervisorConfig.app_name``):
``<app>_<name>_total`` and ``<app>_<name>`` (``pfrps_ac_padi_total``, ``pfrps_bng_sessions``);
its histograms (``app_histograms``, ``ctx.observe``) ``<app>_<name>_bucket/_sum/_count``.

Lifecycle and fork safety (:class:`MetricsEndpoint`): the supervisor binds the address in
:meth:`pfrps.supervisor.Supervisor.start` before anything else is opened, so a port in use or
an address that is not local fails at once (``UsageError``: one line, exit status 2) with no
worker forked; it listens and starts the one serving thread (a daemon) only after every worker
is ready, and stops it in ``close()``. A worker that dies is forked again while that thread
runs; what the child inherits of it is harmless: an ``os.register_at_fork`` hook closes the
child's copies of the listening socket, of the connection being served and of the wake-up
pipe (so the endpoint goes away with the supervisor, and a worker never holds the port), the
thread takes no lock a worker uses (it logs only at debug level, and Python re-initialises the
logging and import locks in a forked child), and the child never runs its code.

Kernel drops, ring freezes and the interface's drops are those the supervisor last read
(``PACKET_STATISTICS`` resets on read, so only the supervisor's own loop reads it, every
``--interval``); ``pfrps_link_up`` is read at scrape time.

.. _prometheus_client: https://github.com/prometheus/client_python
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import logging
import os
import re
import selectors
import socket
import socketserver
import struct
import threading
import weakref
from itertools import repeat
from typing import Any, Callable, Iterator, Mapping, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import gzip_accepted
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from .errors import UsageError
from .stats import Col, SharedCounters

__all__ = ["PfrpsCollector", "MetricsEndpoint", "BUILTIN_METRICS", "SESSION_SETUP_BUCKETS", "open_endpoint",
           "supervisor_collector", "link_running", "metric_prefix", "wsgi_app"]

log = logging.getLogger("pfrps.metrics")

#: Built-in counter columns (:class:`pfrps.stats.Col` names) -> (family name, HELP). Every
#: family is a counter (``<name>_total``) with ``worker`` and ``interface`` labels. A column
#: not listed here is exposed as ``pfrps_<column>_total``; those in :data:`HIDDEN_COLUMNS` not at all.
BUILTIN_METRICS: dict[str, tuple[str, str]] = {
    "FRAMES": ("pfrps_frames", "Frames the worker received from its steered socket (frames; counted by the "
                               "worker in shared memory, kept across worker restarts)."),
    "BYTES": ("pfrps_received_bytes", "Bytes of the frames the worker received, at their length on the wire "
                                      "(bytes; counted by the worker in shared memory)."),
    "TRUNCATED": ("pfrps_truncated_frames", "Frames delivered to the worker shorter than they were on the wire "
                                            "(frames; counted by the worker)."),
    "KERNEL_DROPS": ("pfrps_kernel_drops", "Frames the kernel dropped at the worker's socket, PACKET_STATISTICS "
                                           "tp_drops (frames; read by the supervisor every --interval)."),
    "FREEZES": ("pfrps_ring_freezes", "Times the worker's TPACKET_V3 ring froze, PACKET_STATISTICS "
                                      "tp_freeze_q_cnt (count; read by the supervisor every --interval)."),
    "RESTARTS": ("pfrps_worker_restarts", "Times the supervisor restarted the worker after it died "
                                          "(count; counted by the supervisor)."),
    "HANDLER_ERRORS": ("pfrps_handler_errors", "Exceptions the frame handler raised; the frame was dropped "
                                               "(count; counted by the worker)."),
    "TX_FRAMES": ("pfrps_transmitted_frames", "Frames the worker transmitted (frames; counted by the worker)."),
    "TX_ERRORS": ("pfrps_transmit_errors", "Transmit calls the kernel refused or could not queue "
                                           "(count; counted by the worker)."),
    "INTERRUPTED": ("pfrps_interrupted_frames", "Frames whose handler call a worker's death cut short "
                                                "(frames; counted by the supervisor, ring mode)."),
    "SOCKET_ERRORS": ("pfrps_socket_errors", "Errors the worker's socket reported and the worker cleared, "
                                             "e.g. ENETDOWN when the link went down (count; counted by the worker)."),
    "RESYNC_SKIPPED": ("pfrps_ring_resync_skipped_blocks", "Receive ring blocks the worker skipped because the "
                                                           "kernel was ahead of its read position; their frames "
                                                           "were never handed out (blocks; counted by the worker)."),
    "ASYNC_REFUSED": ("pfrps_async_refused_frames", "Frames an async handler did not get because max_async_tasks "
                                                    "of its tasks were in flight (frames; counted by the worker)."),
}
#: Columns not exposed: the watchdog's progress word, and tp_packets (frames + kernel drops,
#: already there; --json leaves it out too).
HIDDEN_COLUMNS = frozenset({"HEARTBEAT", "KERNEL_PACKETS"})
#: Bucket bounds (seconds) for a session set-up latency histogram (``app_histograms``): PPP
#: negotiation takes milliseconds on a LAN and seconds when a Configure-Request is retransmitted
#: (3 s restart timer). Each bound costs one sample per worker and scrape.
SESSION_SETUP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Prefix of application metrics when ``SupervisorConfig.app_name`` is empty.
DEFAULT_APP = "pfrps_app"
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_LABELS = ("worker", "interface")
SIOCGIFFLAGS = 0x8913
IFF_UP, IFF_RUNNING = 0x1, 0x40


def link_running(ifindex: int) -> bool:
    """True when interface ``ifindex`` is up and running (``IFF_UP`` and ``IFF_RUNNING``: carrier).

    Read with ``SIOCGIFFLAGS`` on a socket of this process's network namespace (``/sys/class/net``
    shows the namespace sysfs was mounted in, which for a process moved by ``setns`` is not its
    own). False when the interface is gone.
    """
    try:
        name = socket.if_indextoname(ifindex)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16s24x", name.encode()))
    except OSError:
        return False
    flags = struct.unpack_from("H", ifr, 16)[0]
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


def metric_prefix(app_name: str) -> str:
    """The prefix of an application's metric names: ``app_name``, or :data:`DEFAULT_APP`."""
    return app_name or DEFAULT_APP


def check_names(app_name: str, names) -> None:
    """Require ``app_name`` and every application counter, gauge and histogram name to be
    valid in a Prometheus metric name.

    Raises:
        UsageError: naming the first bad one.
    """
    for what, name in (("application name", app_name), *(("metric name", n) for n in names)):
        if (name or what == "metric name") and not _NAME.match(name):
            raise UsageError(f"{what} {name!r} cannot be part of a Prometheus metric name",
                             hint="use letters, digits and underscores, not starting with a digit")


class PfrpsCollector:
    """A prometheus_client custom collector over a :class:`SharedCounters` (no per-worker
    Python objects are registered; each scrape builds its families from one snapshot).

    Args:
        counters: the shared counters (and their ``histograms``).
        interface: the ``interface`` label.
        app_name: prefix of application metrics (:func:`metric_prefix`).
        app_help: HELP text per application counter, gauge or histogram name (optional).
        if_rx_dropped: returns the interface's receive drops since start (frames), or None.
        workers_ready: returns how many workers are running and ready, or None.
        link_up: returns whether the link is up and running, or None (then no ``pfrps_link_up``).
        ports: with several interfaces (``-i`` repeated), returns
            :meth:`pfrps.supervisor.Supervisor.port_figures` (``{ifname: {"frames": [...], ...}}``):
            then ``pfrps_port_frames_total``, ``pfrps_port_bytes_total``, ``pfrps_port_drops_total``,
            ``pfrps_port_tx_frames_total`` and ``pfrps_port_tx_errors_total`` per worker and
            interface, and ``pfrps_interface_drops`` per interface; or None.
        port_link_up: ``{ifname: callable}`` of the other interfaces' link state (more
            ``pfrps_link_up`` samples), or None.
    """

    def __init__(self, counters: SharedCounters, interface: str, app_name: str = "",
                 app_help: Optional[Mapping[str, str]] = None,
                 if_rx_dropped: Optional[Callable[[], int]] = None,
                 workers_ready: Optional[Callable[[], int]] = None,
                 link_up: Optional[Callable[[], bool]] = None,
                 ports: Optional[Callable[[], dict]] = None,
                 port_link_up: Optional[Mapping[str, Callable[[], bool]]] = None) -> None:
        self.counters = counters
        self._ports = ports
        self._port_link_up = dict(port_link_up or {})
        self.interface = interface
        self.prefix = metric_prefix(app_name)
        self.app_help = dict(app_help or {})
        self._if_rx_dropped = if_rx_dropped
        self._workers_ready = workers_ready
        self._link_up = link_up
        self._worker_labels = [(str(w), interface) for w in range(counters.workers)]
        # one labels dict per worker, shared by every family's samples (the encoder only reads them)
        self._label_dicts = [dict(zip(_LABELS, lab)) for lab in self._worker_labels]
        self._builtin = [(int(col), *BUILTIN_METRICS.get(col.name, (
            f"pfrps_{col.name.lower()}", f"pfrps counter column {col.name.lower()}, per worker (shared memory).")))
            for col in Col if col.name not in HIDDEN_COLUMNS]

    def describe(self) -> list:
        """The families :meth:`collect` yields (the registry learns their names once, at
        registration, and can then answer ``/metrics?name[]=pfrps_frames_total``)."""
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        """Every metric family, from one copy of the shared counters."""
        arr = self.counters.array.copy()
        labels = self._worker_labels
        iface = (self.interface,)
        ports = self._ports() if self._ports is not None else {}
        for col, name, text in self._builtin:
            yield self._family(CounterMetricFamily, name, text, arr[:, col].tolist(),
                               unit="bytes" if name.endswith("_bytes") else "")
        if self._if_rx_dropped is not None:
            fam = CounterMetricFamily(
                "pfrps_interface_drops", "Frames the interface dropped before any packet socket saw them since "
                "pfrps started: rx_dropped + rx_missed_errors of IFLA_STATS64, as ip -s link shows them "
                "(frames; read by the supervisor every --interval).", labels=("interface",))
            if ports:
                for ifname, fig in ports.items():
                    fam.add_metric((ifname,), fig["if_rx_dropped"])
            else:
                fam.add_metric(iface, self._if_rx_dropped())
            yield fam
        for key, name, text in _PORT_METRICS if ports else ():
            fam = CounterMetricFamily(name, text, labels=_LABELS, unit="bytes" if name.endswith("_bytes") else "")
            for ifname, fig in ports.items():
                for w, v in enumerate(fig[key]):
                    fam.add_metric((str(w), ifname), v)
            yield fam
        if self._link_up is not None:
            fam = self._one("pfrps_link_up", "1 when the interface is up and has carrier (IFF_UP and IFF_RUNNING, "
                            "read at scrape time in pfrps's network namespace), else 0.", int(self._link_up()))
            for ifname, up in self._port_link_up.items():
                fam.add_metric((ifname,), int(up()))
            yield fam
        yield self._one("pfrps_workers", "Worker processes pfrps runs (-w; a count).", self.counters.workers)
        if self._workers_ready is not None:
            yield self._one("pfrps_workers_ready", "Worker processes running and ready now; fewer while one "
                            "restarts (a count, read by the supervisor at scrape time).", self._workers_ready())
        c = self.counters
        for name in c.app_counters:
            text = self.app_help.get(name) or (f"Application counter {name} of {self.prefix}, per worker "
                                               "(ctx.count in the handler; shared memory, kept across restarts).")
            yield self._family(CounterMetricFamily, f"{self.prefix}_{name}", text,
                               arr[:, c.column(name)].tolist())
        for name in c.app_gauges:
            text = self.app_help.get(name) or (f"Application gauge {name} of {self.prefix}, per worker "
                                               "(ctx.count in the handler; zeroed when the worker restarts).")
            yield self._family(GaugeMetricFamily, f"{self.prefix}_{name}", text,
                               arr[:, c.column(name)].view(np.int64).tolist())
        hist = c.histograms
        for name in hist.names:
            full = f"{self.prefix}_{name}"
            text = self.app_help.get(name) or (f"Application histogram {name} of {self.prefix}, per worker "
                                               "(ctx.observe in the handler; shared memory, kept across restarts).")
            fam = HistogramMetricFamily(full, text, labels=_LABELS,
                                        unit="seconds" if full.endswith("_seconds") else "")
            les = [floatToGoString(b) for b in hist.bounds[name]] + ["+Inf"]
            cum = np.cumsum(hist.buckets_of(name), axis=1).tolist()
            sums = hist.sum_of(name).tolist()
            for lab, row, total in zip(labels, cum, sums):
                fam.add_metric(lab, list(zip(les, row)), total)
            yield fam

    def _family(self, kind, name: str, text: str, values: list, unit: str = "") -> Metric:
        fam = kind(name, text, labels=_LABELS, unit=unit)
        # what add_metric does per worker, without building a labels dict per sample
        sample = fam.name + "_total" if fam.type == "counter" else fam.name
        fam.samples.extend(map(Sample, repeat(sample), self._label_dicts, values))
        return fam

    def _one(self, name: str, text: str, value: float) -> Metric:
        fam = GaugeMetricFamily(name, text, labels=("interface",))
        fam.add_metric((self.interface,), value)
        return fam


#: Per worker per interface families (several interfaces): (port_figures key, name, help).
_PORT_METRICS = (
    ("frames", "pfrps_port_frames", "Frames each worker read from each interface (-i repeated; frames)."),
    ("bytes", "pfrps_port_bytes", "Bytes of the frames each worker read from each interface (bytes)."),
    ("drops", "pfrps_port_drops", "Frames the kernel dropped on each worker's socket of each interface "
              "(PACKET_STATISTICS tp_drops, read every --interval; frames)."),
    ("tx_frames", "pfrps_port_tx_frames", "Frames each worker sent out of each interface (frames)."),
    ("tx_errors", "pfrps_port_tx_errors", "Sends that failed, per worker and interface (frames)."),
)


def supervisor_collector(sup: Any) -> PfrpsCollector:
    """The collector of a started :class:`pfrps.supervisor.Supervisor`: its counters, interface,
    application name and help, drops, ready workers and link state; with several interfaces,
    per-interface series too."""
    cfg = sup.config
    ifindex = sup.ifindex
    multi = len(getattr(sup, "ifindexes", ())) > 1
    others = {name: (lambda i=i: link_running(i)) for name, i in zip(cfg.interfaces[1:], sup.ifindexes[1:])} \
        if multi else None
    return PfrpsCollector(
        sup.counters, cfg.interface, app_name=getattr(cfg, "app_name", ""), app_help=getattr(cfg, "app_help", None),
        if_rx_dropped=lambda: sup.if_rx_dropped,
        workers_ready=lambda: sum(1 for s in list(sup.slots) if s.ready and s.pid),
        link_up=lambda: link_running(ifindex), ports=sup.port_figures if multi else None,
        port_link_up=others)


# -- the HTTP endpoint ---------------------------------------------------------------------------
#: What the endpoint answers in when the client takes the classic text format: encoding 1,024
#: workers' samples costs prometheus_client half the time of OpenMetrics (bench/metrics.py).
TEXT_FORMAT = "text/plain;version=0.0.4"
#: gzip level of answers to clients that accept gzip: level 1 compresses a 1,024-worker scrape
#: about 11x in ~2 ms; level 9 (gzip.compress's default) takes ~25 ms for little more.
GZIP_LEVEL = 1


def wsgi_app(registry: CollectorRegistry) -> Callable:
    """``prometheus_client.make_wsgi_app(registry)`` with two changes that halve a large scrape:
    the Prometheus text format whenever the client accepts it (Prometheus asks for OpenMetrics
    first and text/plain with q=0.5), and gzip level 1 instead of 9."""
    app = make_wsgi_app(registry, disable_compression=True)

    def metrics_app(environ, start_response):
        accept = environ.get("HTTP_ACCEPT") or ""
        if not accept or any(a.split(";")[0].strip() in ("text/plain", "*/*") for a in accept.split(",")):
            environ["HTTP_ACCEPT"] = TEXT_FORMAT
        if not gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
            return app(environ, start_response)
        answer: list = []

        def keep(status, headers, exc_info=None):
            answer[:] = [status, headers]

        body = b"".join(app(environ, keep))
        status, headers = answer
        if status.startswith("200") and body:
            body = gzip.compress(body, GZIP_LEVEL)
            headers = [*headers, ("Content-Encoding", "gzip")]
        start_response(status, headers)
        return [body]

    return metrics_app


class _Handler(WSGIRequestHandler):
    #: seconds a client may take to send its request and read the answer
    timeout = 10

    def log_message(self, format, *args):  # noqa: A002  (a scrape a second is not news)
        pass


class _Server(WSGIServer):
    conn: Optional[socket.socket] = None

    def server_bind(self) -> None:
        # HTTPServer.server_bind without its reverse DNS look-up of the address (socket.getfqdn)
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), port
        self.setup_environ()

    def get_request(self):
        conn, addr = super().get_request()
        self.conn = conn
        return conn, addr

    def shutdown_request(self, request) -> None:
        self.conn = None
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:  # a scraper that went away, mostly
        log.debug("metrics request from %s failed", client_address, exc_info=True)


_LIVE: "weakref.WeakSet[MetricsEndpoint]" = weakref.WeakSet()


def _forget_in_child() -> None:
    for ep in list(_LIVE):
        ep._forget()


os.register_at_fork(after_in_child=_forget_in_child)


def _describe_bind_error(host: str, port: int, exc: OSError) -> UsageError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"cannot serve metrics on {where}: the port is in use", code=exc.errno,
                          hint="pick a free port for --metrics, or stop what listens there (ss -ltnp shows it)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"cannot serve metrics on {where}: {host} is not an address of this host", code=exc.errno,
                          hint="give --metrics an address this host has (127.0.0.1:PORT, or 0.0.0.0:PORT for all)")
    if exc.errno == errno.EACCES:
        return UsageError(f"cannot serve metrics on {where}: permission denied", code=exc.errno,
                          hint="use a port above 1023, or run with CAP_NET_BIND_SERVICE")
    return UsageError(f"cannot serve metrics on {where}: {exc.strerror or exc}", code=exc.errno or errno.EINVAL,
                      hint="check the address given to --metrics")


class MetricsEndpoint:
    """The ``/metrics`` endpoint: ``prometheus_client.make_wsgi_app`` on a wsgiref server.

    The constructor binds (and only binds) the address; :meth:`serve` listens and starts the
    serving thread; :meth:`close` stops it and closes the socket. See the module docstring on
    fork safety.

    Args:
        host: an IP address (IPv4, or IPv6 without brackets) or a host name; ``0.0.0.0`` / ``::``
            for every address.
        port: TCP port; 0 picks a free one (see :attr:`address`).

    Raises:
        UsageError: the name does not resolve, the port is in use, the address is not local,
            or binding is not allowed.
    """

    def __init__(self, host: str, port: int) -> None:
        self._pid = os.getpid()
        self._thread: Optional[threading.Thread] = None
        self._wake_r = self._wake_w = -1
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise UsageError(f"cannot serve metrics on {host}:{port}: cannot resolve {host!r} ({exc.strerror})",
                             code=errno.EINVAL, hint="give --metrics an IP address, e.g. 127.0.0.1:9464 or "
                             "[::1]:9464") from None
        error: Optional[OSError] = None
        self._server: Optional[_Server] = None
        for family, _, _, _, sockaddr in infos:
            cls = type("_BoundServer", (_Server,), {"address_family": family})
            server = cls(sockaddr, _Handler, bind_and_activate=False)  # IPv6: with its scope id
            try:
                server.server_bind()
            except OSError as exc:
                server.server_close()
                error = error or exc
                continue
            self._server = server
            break
        if self._server is None:
            raise _describe_bind_error(host, port, error or OSError(errno.EADDRNOTAVAIL, "no address"))
        _LIVE.add(self)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the endpoint is bound to (the port the kernel chose for port 0)."""
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` (IPv6 in brackets)."""
        host, port = self.address
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def serve(self, collector: Any) -> None:
        """Listen, and answer scrapes from ``collector`` (in a private ``CollectorRegistry``) on a
        daemon thread."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        self._server.set_app(wsgi_app(registry))
        self._server.server_activate()
        self._server.socket.setblocking(False)  # a connection reset before accept() must not block the thread
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="pfrps-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        server = self._server
        with selectors.DefaultSelector() as sel:
            sel.register(server.socket, selectors.EVENT_READ, "accept")
            sel.register(self._wake_r, selectors.EVENT_READ, "stop")
            while True:
                events = sel.select()
                if any(key.data == "stop" for key, _ in events):
                    return
                server.handle_request()

    def close(self) -> None:
        """Stop serving and close the socket (idempotent; nothing in a forked child)."""
        if self._pid != os.getpid() or self._server is None:
            return
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=_Handler.timeout + 1)
            self._thread = None
        self._server.server_close()
        self._server = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        _LIVE.discard(self)

    def _forget(self) -> None:
        """In a forked child: close the inherited listening socket, connection and pipe."""
        server, self._server = self._server, None
        if server is not None:
            for sock in (server.socket, server.conn):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1
        self._thread = None


def open_endpoint(config: Any) -> Optional[MetricsEndpoint]:
    """Check the metric names of ``config`` (a SupervisorConfig) and bind its ``metrics``
    address; None when ``metrics`` is None.

    Raises:
        UsageError: a bad name or address, a port in use.
    """
    where = getattr(config, "metrics", None)
    if where is None:
        return None
    if isinstance(where, str):  # "HOST:PORT", as --metrics takes it
        import argparse  # noqa: PLC0415

        from .cliutil import metrics_address  # noqa: PLC0415

        try:
            where = metrics_address(where)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(str(exc), hint="give SupervisorConfig(metrics=) (host, port) or 'HOST:PORT'") from None
    check_names(getattr(config, "app_name", ""),
                (*config.app_counters, *config.app_gauges, *(getattr(config, "app_histograms", None) or {})))
    host, port = where
    if not 0 <= int(port) <= 65535:
        raise UsageError(f"metrics port {port} is out of range", hint="use a port 1..65535")
    return MetricsEndpoint(host, int(port))
