"""The Prometheus collector, endpoint and option (pfrps.metrics, pfrps.cliutil.metrics_address),
and application histograms in shared memory (pfrps.stats.SharedHistograms, ctx.observe).

No HTTP request is sent here (that is tests/root/test_metrics.py's job, in a namespace): the
exposition text comes from prometheus_client's encoder, the WSGI app is called directly, and
the endpoint is only bound.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import os
import socket

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pfrps.cliutil import ArgumentParser, add_metrics_option, metrics_address
from pfrps.config import SupervisorConfig
from pfrps.errors import UsageError
from pfrps.metrics import (BUILTIN_METRICS, HIDDEN_COLUMNS, MetricsEndpoint, PfrpsCollector, check_names,
                           link_running, open_endpoint, supervisor_collector, wsgi_app)
from pfrps.stats import Col, SharedCounters, SharedHistograms, snapshot
from pfrps.worker import WorkerContext


def tiny() -> SharedCounters:
    """Two workers with a few counts in every kind of column."""
    c = SharedCounters(2, ("padi",), ("sessions",), {"setup_seconds": (0.1, 1.0)})
    c.array[0, Col.FRAMES] = 5
    c.array[1, Col.FRAMES] = 7
    c.array[1, Col.BYTES] = 740
    c.array[0, Col.KERNEL_DROPS] = 2
    c.array[1, Col.RESTARTS] = 1
    c.add(0, c.column("padi"), 3)
    c.add(1, c.column("sessions"), -1)  # a gauge below zero reads back signed
    c.add(0, c.column("sessions"), 2)
    h = c.histograms
    h.observe(0, "setup_seconds", 0.05)
    h.observe(0, "setup_seconds", 0.5)
    h.observe(1, "setup_seconds", 2.5)
    return c


def _builtin(name: str, help_text: str, w0: str = "0.0", w1: str = "0.0") -> str:
    return (f"# HELP {name}_total {help_text}\n# TYPE {name}_total counter\n"
            f'{name}_total{{interface="eth1",worker="0"}} {w0}\n{name}_total{{interface="eth1",worker="1"}} {w1}\n')


EXPECTED = (
    _builtin("pfrps_frames", "Frames the worker received from its steered socket (frames; counted by the worker in "
             "shared memory, kept across worker restarts).", "5.0", "7.0")
    + _builtin("pfrps_received_bytes", "Bytes of the frames the worker received, at their length on the wire "
               "(bytes; counted by the worker in shared memory).", "0.0", "740.0")
    + _builtin("pfrps_truncated_frames", "Frames delivered to the worker shorter than they were on the wire "
               "(frames; counted by the worker).")
    + _builtin("pfrps_kernel_drops", "Frames the kernel dropped at the worker's socket, PACKET_STATISTICS tp_drops "
               "(frames; read by the supervisor every --interval).", "2.0", "0.0")
    + _builtin("pfrps_ring_freezes", "Times the worker's TPACKET_V3 ring froze, PACKET_STATISTICS tp_freeze_q_cnt "
               "(count; read by the supervisor every --interval).")
    + _builtin("pfrps_worker_restarts", "Times the supervisor restarted the worker after it died (count; counted "
               "by the supervisor).", "0.0", "1.0")
    + _builtin("pfrps_handler_errors", "Exceptions the frame handler raised; the frame was dropped (count; counted "
               "by the worker).")
    + _builtin("pfrps_transmitted_frames", "Frames the worker transmitted (frames; counted by the worker).")
    + _builtin("pfrps_transmit_errors", "Transmit calls the kernel refused or could not queue (count; counted by "
               "the worker).")
    + _builtin("pfrps_interrupted_frames", "Frames whose handler call a worker's death cut short (frames; counted "
               "by the supervisor, ring mode).")
    + _builtin("pfrps_socket_errors", "Errors the worker's socket reported and the worker cleared, e.g. ENETDOWN "
               "when the link went down (count; counted by the worker).")
    + _builtin("pfrps_ring_resync_skipped_blocks", "Receive ring blocks the worker skipped because the kernel was "
               "ahead of its read position; their frames were never handed out (blocks; counted by the worker).")
    + _builtin("pfrps_async_refused_frames", "Frames an async handler did not get because max_async_tasks of its "
               "tasks were in flight (frames; counted by the worker).")
    + """\
# HELP pfrps_interface_drops_total Frames the interface dropped before any packet socket saw them since pfrps started: rx_dropped + rx_missed_errors of IFLA_STATS64, as ip -s link shows them (frames; read by the supervisor every --interval).
# TYPE pfrps_interface_drops_total counter
pfrps_interface_drops_total{interface="eth1"} 4.0
# HELP pfrps_link_up 1 when the interface is up and has carrier (IFF_UP and IFF_RUNNING, read at scrape time in pfrps's network namespace), else 0.
# TYPE pfrps_link_up gauge
pfrps_link_up{interface="eth1"} 1.0
# HELP pfrps_workers Worker processes pfrps runs (-w; a count).
# TYPE pfrps_workers gauge
pfrps_workers{interface="eth1"} 2.0
# HELP pfrps_workers_ready Worker processes running and ready now; fewer while one restarts (a count, read by the supervisor at scrape time).
# TYPE pfrps_workers_ready gauge
pfrps_workers_ready{interface="eth1"} 1.0
# HELP pfrps_test_padi_total PADI frames received (frames; per worker).
# TYPE pfrps_test_padi_total counter
pfrps_test_padi_total{interface="eth1",worker="0"} 3.0
pfrps_test_padi_total{interface="eth1",worker="1"} 0.0
# HELP pfrps_test_sessions Application gauge sessions of pfrps_test, per worker (ctx.count in the handler; zeroed when the worker restarts).
# TYPE pfrps_test_sessions gauge
pfrps_test_sessions{interface="eth1",worker="0"} 2.0
pfrps_test_sessions{interface="eth1",worker="1"} -1.0
# HELP pfrps_test_setup_seconds Application histogram setup_seconds of pfrps_test, per worker (ctx.observe in the handler; shared memory, kept across restarts).
# TYPE pfrps_test_setup_seconds histogram
pfrps_test_setup_seconds_bucket{interface="eth1",le="0.1",worker="0"} 1.0
pfrps_test_setup_seconds_bucket{interface="eth1",le="1.0",worker="0"} 2.0
pfrps_test_setup_seconds_bucket{interface="eth1",le="+Inf",worker="0"} 2.0
pfrps_test_setup_seconds_count{interface="eth1",worker="0"} 2.0
pfrps_test_setup_seconds_sum{interface="eth1",worker="0"} 0.55
pfrps_test_setup_seconds_bucket{interface="eth1",le="0.1",worker="1"} 0.0
pfrps_test_setup_seconds_bucket{interface="eth1",le="1.0",worker="1"} 0.0
pfrps_test_setup_seconds_bucket{interface="eth1",le="+Inf",worker="1"} 1.0
pfrps_test_setup_seconds_count{interface="eth1",worker="1"} 1.0
pfrps_test_setup_seconds_sum{interface="eth1",worker="1"} 2.5
""")


def registry_of(collector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def test_exposition_text_of_a_tiny_run():
    c = tiny()
    try:
        col = PfrpsCollector(c, "eth1", "pfrps_test", app_help={"padi": "PADI frames received (frames; per worker)."},
                             if_rx_dropped=lambda: 4, workers_ready=lambda: 1, link_up=lambda: True)
        assert generate_latest(registry_of(col)).decode() == EXPECTED
    finally:
        c.close()


def test_every_column_is_named_or_hidden():
    """A new Col gets a deliberate metric name (BUILTIN_METRICS) or is hidden on purpose."""
    for col in Col:
        assert (col.name in BUILTIN_METRICS) != (col.name in HIDDEN_COLUMNS), col.name
    names = [n for n, _ in BUILTIN_METRICS.values()]
    assert len(set(names)) == len(names)
    assert all(n.startswith("pfrps_") and not n.endswith("_total") for n in names)


def test_scrape_reads_shared_memory_live_and_keeps_counts():
    """Each scrape is a fresh snapshot; nothing is cached between scrapes."""
    c = SharedCounters(3)
    try:
        reg = registry_of(PfrpsCollector(c, "eth0"))
        c.array[2, Col.FRAMES] = 41
        assert b'pfrps_frames_total{interface="eth0",worker="2"} 41.0' in generate_latest(reg)
        c.array[2, Col.FRAMES] += 1
        text = generate_latest(reg)
        assert b'pfrps_frames_total{interface="eth0",worker="2"} 42.0' in text
        # optional families are left out when their source is not given
        assert b"pfrps_link_up" not in text and b"pfrps_workers_ready" not in text
        assert b'pfrps_workers{interface="eth0"} 3.0' in text
    finally:
        c.close()


def test_app_metrics_without_an_app_name_get_a_default_prefix():
    c = SharedCounters(1, ("hits",), ("open",))
    try:
        text = generate_latest(registry_of(PfrpsCollector(c, "eth0"))).decode()
        assert 'pfrps_app_hits_total{interface="eth0",worker="0"} 0.0' in text
        assert 'pfrps_app_open{interface="eth0",worker="0"} 0.0' in text
    finally:
        c.close()


def environ(accept: str = "", encoding: str = "") -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "", "HTTP_ACCEPT": accept,
            "HTTP_ACCEPT_ENCODING": encoding}


def call(app, env: dict) -> tuple[str, dict, bytes]:
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(env, start_response))
    return got["status"], got["headers"], body


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def test_wsgi_app_answers_prometheus_in_text_format_gzip_level_1():
    c = tiny()
    try:
        reg = registry_of(PfrpsCollector(c, "eth1", "pfrps_test"))
        app = wsgi_app(reg)
        status, headers, body = call(app, environ(PROMETHEUS_ACCEPT, "gzip"))
        assert status == "200 OK"
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == generate_latest(reg)
        # no gzip asked: plain; OpenMetrics only: OpenMetrics
        status, headers, body = call(app, environ("text/plain"))
        assert "Content-Encoding" not in headers and body == generate_latest(reg)
        status, headers, body = call(app, environ("application/openmetrics-text;version=1.0.0"))
        assert headers["Content-Type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
        assert b"# UNIT pfrps_test_setup_seconds seconds" in body
        # ?name[]= keeps only the families asked for
        status, headers, body = call(app, {**environ("text/plain"), "QUERY_STRING": "name[]=pfrps_workers"})
        assert body == b'# HELP pfrps_workers Worker processes pfrps runs (-w; a count).\n' \
                       b'# TYPE pfrps_workers gauge\npfrps_workers{interface="eth1"} 2.0\n'
    finally:
        c.close()


def test_histograms_in_shared_memory():
    h = SharedHistograms(2, {"a": (1, 2, 4), "b": [0.5]})
    try:
        for v in (0, 1, 1.5, 4, 5, -3):
            h.observe(1, "a", v)
        h.observe(0, "b", 0.7)
        assert h.buckets_of("a").tolist() == [[0, 0, 0, 0], [3, 1, 1, 1]]  # le 1 | le 2 | le 4 | +Inf
        assert h.buckets_of("b").tolist() == [[0, 1], [0, 0]]
        assert h.sum_of("a").tolist() == [0.0, 8.5]
        with pytest.raises(KeyError):
            h.observe(0, "nope", 1)
        with pytest.raises(ValueError):
            h.observe(0, "a", float("nan"))
    finally:
        h.close()
    for bad in ((), (2, 1), (1, 1), (1, float("inf"))):
        with pytest.raises(ValueError):
            SharedHistograms(1, {"x": bad})


def test_histograms_survive_fork_and_reach_the_parent():
    """A worker's observe lands in the supervisor's view (shared mapping, made before fork)."""
    c = SharedCounters(2, app_histograms={"setup_seconds": (0.01, 0.1)})
    try:
        pid = os.fork()
        if pid == 0:  # a worker: its WorkerContext, no socket or loop needed for observe
            status = 1
            try:
                WorkerContext(1, 2, 1, None, c, None).observe("setup_seconds", 0.05)
                status = 0
            finally:
                os._exit(status)
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == 0
        assert c.histograms.buckets_of("setup_seconds").tolist() == [[0, 0, 0], [0, 1, 0]]
        snap = snapshot(c, 1.0)
        assert snap["setup_seconds_count"] == [0, 1] and snap["setup_seconds_sum"] == [0.0, 0.05]
    finally:
        c.close()


# -- --metrics ADDR:PORT ------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:9100", ("::1", 9100)),
    ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ("[::]:1", ("::", 1)),
    ("localhost:9464", ("localhost", 9464)),
    (" metrics-1.example:80 ", ("metrics-1.example", 80)),
])
def test_metrics_address_parses(text, want):
    assert metrics_address(text) == want


@pytest.mark.parametrize("text, needle", [
    ("9464", "names only a port"),
    ("127.0.0.1", "has no port"),
    (":9464", "names no host"),
    ("::1:9464", "in brackets"),
    ("[::1]9464", "[IPv6]:PORT"),
    ("[127.0.0.1]:9464", "not an IPv6 address"),
    ("1.2.3.999:9464", "not an IPv4 address"),
    ("bad_host:9464", "not a host name"),
    ("127.0.0.1:0", "out of range 1..65535"),
    ("127.0.0.1:65536", "out of range"),
    ("127.0.0.1:+80", "not a number"),
    ("127.0.0.1:9_4", "not a number"),
])
def test_metrics_address_rejects(text, needle):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        metrics_address(text)
    assert needle in str(info.value)


def test_metrics_option_is_one_line_exit_2(capsys):
    p = ArgumentParser(prog="tool")
    add_metrics_option(p)
    assert p.parse_args([]).metrics is None
    assert p.parse_args(["--metrics", "[::1]:9464"]).metrics == ("::1", 9464)
    with pytest.raises(SystemExit) as info:
        p.parse_args(["--metrics", "9464"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tool: error: argument --metrics: ")


# -- the endpoint: binding (no request is sent) ---------------------------------------------------
def test_port_in_use_is_a_usage_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError) as info:
            MetricsEndpoint("127.0.0.1", port)
    assert info.value.code == errno.EADDRINUSE and info.value.exit_status == 2
    assert f"127.0.0.1:{port}: the port is in use" in info.value.one_line()


def test_address_not_on_this_host_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        MetricsEndpoint("192.0.2.1", 9464)  # TEST-NET-1: never a local address
    assert info.value.code == errno.EADDRNOTAVAIL
    assert "192.0.2.1 is not an address of this host" in info.value.one_line()


def test_bind_picks_a_port_and_close_releases_it():
    ep = MetricsEndpoint("127.0.0.1", 0)
    host, port = ep.address
    assert host == "127.0.0.1" and port > 0 and ep.url == f"http://127.0.0.1:{port}/metrics"
    ep.close()
    ep.close()  # idempotent
    again = MetricsEndpoint("127.0.0.1", port)  # the port is free again
    again.close()


def test_forked_child_does_not_keep_the_endpoint():
    """A worker forked while the endpoint serves closes its copy of the listening socket (and
    the wake-up pipe): the port goes away with the supervisor."""
    c = SharedCounters(1)
    ep = MetricsEndpoint("127.0.0.1", 0)
    try:
        ep.serve(PfrpsCollector(c, "eth0"))
        fds = [ep._server.socket.fileno(), ep._wake_r, ep._wake_w]
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                still_open = []
                for fd in fds:
                    try:
                        os.fstat(fd)
                        still_open.append(fd)
                    except OSError:
                        pass
                ep.close()  # a no-op in the child: the parent's thread and socket are not touched
                status = 0 if not still_open else 3
            finally:
                os._exit(status)
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == 0
        os.fstat(fds[0])  # the parent's socket is still open
    finally:
        ep.close()
        c.close()


def test_open_endpoint_checks_names_and_is_off_by_default():
    assert open_endpoint(SupervisorConfig("eth0")) is None
    with pytest.raises(UsageError, match="application name 'pfrps-ac'"):
        open_endpoint(SupervisorConfig("eth0", metrics=("127.0.0.1", 0), app_name="pfrps-ac"))
    with pytest.raises(UsageError, match="metric name '2fast'"):
        open_endpoint(SupervisorConfig("eth0", metrics=("127.0.0.1", 0), app_counters=("2fast",)))
    check_names("pfrps_bng", ("sessions", "session_setups", "session_setup_seconds"))
    ep = open_endpoint(SupervisorConfig("eth0", metrics=("127.0.0.1", 0), app_name="pfrps_bng"))
    ep.close()
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = open_endpoint(SupervisorConfig("eth0", metrics=f"127.0.0.1:{port}"))  # the --metrics form too
    assert ep.address == ("127.0.0.1", port)
    ep.close()
    with pytest.raises(UsageError, match="names only a port"):
        open_endpoint(SupervisorConfig("eth0", metrics="9464"))


def test_supervisor_collector_reads_the_supervisor():
    class Slot:
        def __init__(self, ready, pid):
            self.ready, self.pid = ready, pid

    class Sup:
        config = SupervisorConfig("lo", app_name="pfrps_x", app_help={"n": "N things (things; per worker)."},
                                  app_counters=("n",))
        ifindex = socket.if_nametoindex("lo")
        if_rx_dropped = 9
        slots = [Slot(True, 10), Slot(False, 11), Slot(True, 0)]
        counters = SharedCounters(3, ("n",))

    try:
        text = generate_latest(registry_of(supervisor_collector(Sup))).decode()
        assert 'pfrps_workers_ready{interface="lo"} 1.0' in text
        assert 'pfrps_interface_drops_total{interface="lo"} 9.0' in text
        assert "# HELP pfrps_x_n_total N things (things; per worker)." in text
        assert f'pfrps_link_up{{interface="lo"}} {float(link_running(Sup.ifindex))}' in text
    finally:
        Sup.counters.close()


def test_link_running_of_a_missing_interface_is_false():
    assert link_running(0x7FFFFFFF) is False
    assert isinstance(link_running(socket.if_nametoindex("lo")), bool)
