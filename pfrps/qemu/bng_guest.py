"""What runs inside each guest for ``python -m pfrps.qemu.bng``: pfrps-bng on the node, Debian's
pppd (kernel PPPoE through its ``pppoe.so`` plugin) on the injector, two dials (PAP, then CHAP).

``python -m pfrps.qemu.bng_guest node|injector /mnt/results/run.json`` (started by
``pfrps/qemu/files/bng-run``); its output goes to the results folder line by line (the host shows it live);
each guest also writes ``<name>.json``, its report.

node (``enp1s0``: the access side):
  1. the uplink side, a network namespace ``inet`` behind a veth pair: ``up0`` (198.51.100.1/24,
     2001:db8:ffff::1/64) in the node, ``inet0`` (198.51.100.2/24, 2001:db8:ffff::2/64, routes to
     both pools via up0's addresses) in ``inet``. Forwarding and the pools' routes in the node
     are pfrps-bng's to set (it does). IPv6 on again on enp1s0 (``./run qemu``'s link_up turns
     it off; the BNG routes the IPv6 pool there). inet0 with GRO on (a veth takes
     XDP_REDIRECTed frames only with NAPI on its peer: an XDP program or GRO there) and tx
     checksum offload off (its frames leave complete, as XDP forwards them untouched). The
     node pings 198.51.100.2 and 2001:db8:ffff::2 once (the namespace works, the neighbours
     are known);
  2. ``pfrps-bng -i enp1s0 --uplink up0 -w W --pool 100.64.0.0/24 --ipv6-pool 2001:db8:100::/56
     --dns 192.0.2.53 --auth pap,chap --secrets FILE --ready-fd FD``; at READY, the XDP attach
     modes (bpftool net: ``driver`` is native), then it posts ``ready``;
  3. per dial, at ``<m>-up``: ``pfrps-bng show sessions --json`` (exactly one session, the
     dial's user) and the data plane's entries (every hash map of the XDP programs on enp1s0 and
     up0, by bpftool); posts ``<m>-checked``; at ``<m>-down``, waits until show sessions is empty
     and those maps hold no entry, posts ``<m>-clean``;
  4. SIGTERM: pfrps-bng must exit 0 and leave no XDP program on enp1s0 or up0.
injector (``eno1``):
  ``modprobe pppoe`` (ppp_generic, pppox, pppoe), the client's pap-secrets/chap-secrets, then
  per dial: ``pppd plugin pppoe.so eno1 user U ... nodetach debug`` until ppp0 has its IPv4
  address (IPCP) and a global IPv6 address (IPv6CP's link-local, then SLAAC from the BNG's RA),
  ``ping -c 3`` to 198.51.100.2 and ``ping -6 -c 3`` to 2001:db8:ffff::2, posts ``<m>-up``, waits
  for ``<m>-checked``, SIGTERM to pppd (LCP Terminate-Request, PADT), posts ``<m>-down``, waits
  for ``<m>-clean``.

``server`` ``ac`` (discovery only, before pfrps-bng existed): the node runs ``pfrps-ac``
instead, the injector one dial that must get a PPPoE session id (PADS) from it; LCP then times
out (pfrps-ac speaks no PPP), which proves the image, the modules, pppd and the link.

Hand-over between the guests: files ``step.<name>`` in the shared results folder (9p without a
cache: each guest sees the other's files at once), written atomically (temporary name, rename).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from .guest import _kernel_xdp_warnings, _uptime, link_up

__all__ = ["main", "Steps", "parse_pppd_addresses", "parse_ping", "session_list", "pppd_argv",
           "INET_NS", "UPLINK_IF", "TARGET_V4", "TARGET_V6", "POOL4", "POOL6", "USERS"]

ACCESS_IF = "enp1s0"
UPLINK_IF = "up0"
INET_NS = "inet"
INET_IF = "inet0"
UPLINK_V4, TARGET_V4 = "198.51.100.1", "198.51.100.2"
UPLINK_V6, TARGET_V6 = "2001:db8:ffff::1", "2001:db8:ffff::2"
POOL4 = "100.64.0.0/24"
POOL6 = "2001:db8:100::/56"
DNS4 = "192.0.2.53"
#: One subscriber per dial, so that show sessions naming the right user shows the right session.
USERS = {"pap": ("user1", "pap-secret-1"), "chap": ("user2", "chap-secret-2")}
SECRETS = "/run/pfrps-bng/secrets"
#: Map types whose entries are sessions (arrays always hold max_entries: counters, config).
HASH_MAPS = ("hash", "lru_hash", "percpu_hash", "lru_percpu_hash", "lpm_trie")


_say_lock = threading.Lock()


def say(text: str) -> None:
    """One whole line to stdout (threads copying pppd's and pfrps-bng's output share it)."""
    with _say_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


class Steps:
    """Hand-over files ``step.<name>`` (JSON) in the shared results folder."""

    def __init__(self, folder: Path, timeout: float) -> None:
        self.folder = folder
        self.timeout = timeout

    def post(self, name: str, data: object = None) -> None:
        tmp = self.folder / f".step.{name}.{os.getpid()}"
        tmp.write_text(json.dumps(data) + "\n")
        os.rename(tmp, self.folder / f"step.{name}")

    def wait(self, name: str, timeout: Optional[float] = None) -> object:
        """The body of ``step.<name>`` once the other guest posted it; SystemExit after the timeout."""
        path = self.folder / f"step.{name}"
        end = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < end:
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                time.sleep(0.2)  # polling a 9p folder: no inotify across guests
        raise SystemExit(f"the other guest did not post {name!r} within {timeout or self.timeout:.0f} s")


class Checks:
    """Named checks with a detail each; ``ok`` when every one passed."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.items: list[dict] = []

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.items.append({"name": name, "ok": bool(ok), "detail": detail})
        say(f"{self.who}: check {name}: {'OK' if ok else 'FAILED'}{': ' + detail if detail else ''}")
        return bool(ok)

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(c["ok"] for c in self.items)


def sh(*argv: str, timeout: float = 60, check: bool = True, ns: Optional[str] = None) -> str:
    """Run a command (in namespace ``ns``), return its output; SystemExit naming it when it fails."""
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    res = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise SystemExit(f"{' '.join(full)} failed with status {res.returncode}: "
                         f"{(res.stderr or res.stdout).strip()}")
    return res.stdout


def sysctl(name: str, value: str) -> None:
    Path("/proc/sys/" + name.replace(".", "/")).write_text(value + "\n")


def parse_ping(out: str) -> tuple[int, int]:
    """``(transmitted, received)`` from ping's summary line; (0, 0) when there is none."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def parse_pppd_addresses(lines: Sequence[str]) -> dict:
    """What pppd logged about the link: ``local``/``remote`` IPv4, ``local_ll``/``remote_ll`` IPv6
    link-local, ``dns`` (primary, secondary), ``session`` (PPPoE session id), ``auth`` (the
    authentication pppd reported succeeding, ``PAP``/``CHAP``)."""
    out: dict = {"dns": []}
    pats = {"local": r"local\s+IP address (\S+)", "remote": r"remote IP address (\S+)",
            "local_ll": r"local\s+LL address (\S+)", "remote_ll": r"remote LL address (\S+)",
            "session": r"PPP session is (\d+)", "auth": r"(PAP|CHAP) authentication succeeded"}
    for line in lines:
        for key, pat in pats.items():
            m = re.search(pat, line)
            if m and key not in out:
                out[key] = int(m.group(1)) if key == "session" else m.group(1)
        m = re.search(r"(?:primary|secondary)\s+DNS address (\S+)", line)
        if m:
            out["dns"].append(m.group(1))
    return out


def session_list(text: str) -> list[dict]:
    """The sessions of ``pfrps-bng show sessions --json``: a JSON list, an object with a
    ``sessions`` list, or JSON lines (one session each)."""
    text = text.strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        doc = [json.loads(ln) for ln in text.splitlines() if ln.strip().startswith("{")]
    if isinstance(doc, dict):
        for key in ("sessions", "items"):
            if isinstance(doc.get(key), list):
                return doc[key]
        return [doc] if doc else []
    return list(doc)


def session_user(s: dict) -> Optional[str]:
    for key in ("user", "username", "peer_name", "name"):
        if isinstance(s.get(key), str):
            return s[key]
    return None


# --- node -------------------------------------------------------------------------------------

def bng_cmd() -> list[str]:
    """How to run pfrps-bng from the checkout (no console script in the guest): through
    :func:`run_bng`, which shows the whole verifier log when the guest's kernel refuses a program."""
    return [sys.executable, "-m", "pfrps.qemu.bng_guest", "pfrps-bng"]


def run_bng(argv: Sequence[str]) -> int:
    """``pfrps-bng ARGS``, with every failed ``bpf(2)`` that had a verifier log printing that whole
    log to stderr first: the guest's kernel (6.1) may refuse what the host's accepted, and
    pfrps.bpfsys keeps only the log's last line in its error."""
    import ctypes

    from pfrps import bpfsys
    from pfrps.bng.cli import main as bng_main

    orig = getattr(bpfsys, "_bpf", None)

    def logged(cmd, attr, what=""):
        try:
            return orig(cmd, attr, what)
        except Exception:
            buf, size = getattr(attr, "log_buf", 0), getattr(attr, "log_size", 0)
            if buf and size:
                text = ctypes.string_at(buf, size).split(b"\0", 1)[0].decode(errors="replace").rstrip()
                if text:
                    print(f"pfrps-bng: verifier log of {what}:", file=sys.stderr)
                    for line in text.splitlines()[-120:]:
                        print("  verifier| " + line, file=sys.stderr)
                    sys.stderr.flush()
            raise

    if orig is not None:
        bpfsys._bpf = logged
    return bng_main(list(argv))


def uplink_namespace() -> None:
    """up0 in the node, inet0 in namespace ``inet`` with the target addresses (see the module doc)."""
    sh("ip", "netns", "add", INET_NS)
    sh("ip", "link", "add", UPLINK_IF, "type", "veth", "peer", "name", INET_IF, "netns", INET_NS)
    sh("ip", "addr", "add", f"{UPLINK_V4}/24", "dev", UPLINK_IF)
    sh("ip", "-6", "addr", "add", f"{UPLINK_V6}/64", "dev", UPLINK_IF, "nodad")
    sh("ip", "link", "set", UPLINK_IF, "up")
    sh("ip", "link", "set", "lo", "up", ns=INET_NS)
    sh("ip", "addr", "add", f"{TARGET_V4}/24", "dev", INET_IF, ns=INET_NS)
    sh("ip", "-6", "addr", "add", f"{TARGET_V6}/64", "dev", INET_IF, "nodad", ns=INET_NS)
    sh("ip", "link", "set", INET_IF, "up", ns=INET_NS)
    sh("ip", "route", "add", POOL4, "via", UPLINK_V4, ns=INET_NS)
    sh("ip", "-6", "route", "add", POOL6, "via", UPLINK_V6, ns=INET_NS)
    sh("ethtool", "-K", INET_IF, "gro", "on", "tx", "off", ns=INET_NS)
    sh("ethtool", "-K", UPLINK_IF, "tx", "off")


def xdp_programs(ifname: str) -> list[dict]:
    """XDP programs on ``ifname``: ``[{"id": N, "mode": "driver"|"generic"|..., "name": ...}]``."""
    try:
        doc = json.loads(sh("bpftool", "-j", "net", "show", "dev", ifname, check=False) or "[]")
    except ValueError:
        return []
    progs = []
    for entry in doc if isinstance(doc, list) else [doc]:
        for x in entry.get("xdp", []):
            try:
                info = json.loads(sh("bpftool", "-j", "prog", "show", "id", str(x.get("id")), check=False) or "{}")
            except ValueError:
                info = {}
            progs.append({"id": x.get("id"), "mode": x.get("mode"), "name": x.get("name") or info.get("name")})
    return progs


def dataplane_entries(ifnames: Sequence[str]) -> dict[str, int]:
    """Entries of every hash-type map the XDP programs on ``ifnames`` use: ``{"<name>#<id>": n}``."""
    maps: set[int] = set()
    for ifname in ifnames:
        for prog in xdp_programs(ifname):
            try:
                info = json.loads(sh("bpftool", "-j", "prog", "show", "id", str(prog["id"]), check=False) or "{}")
            except ValueError:
                continue
            maps.update(info.get("map_ids", []))
    out = {}
    for mid in sorted(maps):
        try:
            info = json.loads(sh("bpftool", "-j", "map", "show", "id", str(mid), check=False) or "{}")
        except ValueError:
            continue
        if info.get("type") not in HASH_MAPS:
            continue
        try:
            dump = json.loads(sh("bpftool", "-j", "map", "dump", "id", str(mid), check=False) or "[]")
        except ValueError:
            dump = []
        out[f"{info.get('name', '?')}#{mid}"] = len(dump)
    return out


class Streamer(threading.Thread):
    """Copies a process's output lines to ours (with ``prefix``) and keeps them."""

    def __init__(self, proc: subprocess.Popen, prefix: str = "") -> None:
        super().__init__(daemon=True)
        self.proc, self.prefix = proc, prefix
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        shown = None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line != shown:  # pfrps-bng's per-second line repeats unchanged while nothing happens
                say(self.prefix + line)
                shown = line

    def seen(self, pattern: str) -> Optional[re.Match]:
        for line in list(self.lines):
            m = re.search(pattern, line)
            if m:
                return m
        return None


def start_ready(argv: list[str], shown: str, timeout: float) -> tuple[subprocess.Popen, Streamer, bool]:
    """Start ``argv`` with ``--ready-fd`` (its output copied to ours); ``(proc, streamer, ready)``
    once READY came, it exited or ``timeout`` passed. ``shown`` is the command line shown."""
    r, w = os.pipe()
    say(f"node$ {shown} --ready-fd {w}")
    proc = subprocess.Popen([*argv, "--ready-fd", str(w)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, pass_fds=(w,), bufsize=1)
    os.close(w)
    streamer = Streamer(proc)
    ready = False
    end = time.monotonic() + timeout
    os.set_blocking(r, False)
    data = b""
    try:
        while time.monotonic() < end:
            try:
                chunk = os.read(r, 64)
            except BlockingIOError:
                time.sleep(0.2)
                continue
            if not chunk:
                break  # closed without READY: it exited
            data += chunk
            if data.startswith(b"READY"):
                ready = True
                break
    finally:
        os.close(r)
    return proc, streamer, ready


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> Optional[int]:
    """Signal ``proc`` and wait; its status, or None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _progs(progs: list[dict]) -> str:
    return ", ".join(f"{p.get('name')} (id {p.get('id')}) {p.get('mode')}" for p in progs) or "none"


def node(cfg: dict, results: Path) -> int:
    steps = Steps(results, cfg.get("sync_timeout", 300))
    checks = Checks("node")
    report: dict = {"dials": {}}
    ifindex, mac = link_up(ACCESS_IF)
    # IPv6 back on (link_up turns it off for ./run qemu): the BNG routes the IPv6 pool via the
    # access interface, which the kernel refuses (EACCES) while IPv6 is disabled there
    sysctl(f"net.ipv6.conf.{ACCESS_IF}.disable_ipv6", "0")
    say(f"node: booted in {_uptime():.1f} s (guest uptime); {ACCESS_IF} up, ifindex {ifindex}, {mac}, "
        f"kernel {os.uname().release}, {os.cpu_count()} vCPUs")
    uplink_namespace()
    ping4 = parse_ping(sh("ping", "-c", "1", "-W", "5", TARGET_V4, check=False))
    ping6 = parse_ping(sh("ping", "-6", "-c", "1", "-W", "5", TARGET_V6, check=False))
    checks.add("inet-namespace", ping4[1] == 1 and ping6[1] == 1,
               f"{UPLINK_IF} {UPLINK_V4}/24 {UPLINK_V6}/64 <-> {INET_NS}/{INET_IF} {TARGET_V4} {TARGET_V6}: "
               f"ping {ping4[1]}/{ping4[0]}, ping -6 {ping6[1]}/{ping6[0]}")
    server = cfg.get("server", "bng")
    os.makedirs(os.path.dirname(SECRETS), exist_ok=True)
    with open(SECRETS, "w") as f:
        f.write("# client\tserver\tsecret\n")
        for user, secret in USERS.values():
            f.write(f"{user}\t*\t{secret}\n")
    os.chmod(SECRETS, 0o600)
    if server == "ac":
        args = ["-i", ACCESS_IF, "-w", str(cfg["workers"]), "--ac-name", "pfrps-bng"]
        argv, label = [sys.executable, "-m", "pfrps.ac", *args], "pfrps-ac"
    else:
        args = ["-i", ACCESS_IF, "--uplink", UPLINK_IF, "-w", str(cfg["workers"]), "--pool", POOL4,
                "--ipv6-pool", POOL6, "--dns", DNS4, "--auth", cfg.get("auth", "pap,chap"), "--secrets", SECRETS,
                *(["--generic"] if cfg.get("generic") else [])]
        argv, label = [*bng_cmd(), *args], "pfrps-bng"
    t0 = time.monotonic()
    proc, out, ready = start_ready(argv, " ".join([label, *args]), cfg.get("ready_timeout", 300))
    report["ready_seconds"] = round(time.monotonic() - t0, 1)
    try:
        checks.add("ready", ready, f"{label} ready in {report['ready_seconds']} s" if ready else
                   f"{label} not ready after {report['ready_seconds']} s" +
                   (f" (exited with status {proc.poll()})" if proc.poll() is not None else ""))
        if ready and server == "bng":
            xdp = {ifn: xdp_programs(ifn) for ifn in (ACCESS_IF, UPLINK_IF)}
            report["xdp"] = xdp
            want = "generic" if cfg.get("generic") else "driver"  # bpftool: driver = native
            checks.add("generic-xdp" if cfg.get("generic") else "native-xdp",
                       [p.get("mode") for p in xdp[ACCESS_IF]] == [want],
                       f"{ACCESS_IF}: {_progs(xdp[ACCESS_IF])}; {UPLINK_IF}: {_progs(xdp[UPLINK_IF])}")
            for w in _kernel_xdp_warnings():
                say(f"node: kernel: {w}")
        steps.post("ready", {"ok": ready})
        if ready and server == "ac":
            steps.wait("ac-done")
        elif ready:
            for method in cfg.get("methods", ["pap", "chap"]):
                report["dials"][method] = node_dial(method, steps, checks)
                if not report["dials"][method]["client"].get("dialled"):
                    break  # the injector stops after a dial that did not come up
    except SystemExit as exc:  # a hand-over step that never came: the report still gets written
        checks.add("hand-over", False, str(exc))
    finally:
        status = stop(proc)
        out.join(timeout=10)
        report["server_status"] = status
        report["server_log"] = out.lines[-400:]
    if ready:  # otherwise the ready check named its exit status already
        checks.add("server-exit", status == 0, f"{label} exited with status {status} after SIGTERM")
    if server == "bng":
        left = {ifn: xdp_programs(ifn) for ifn in (ACCESS_IF, UPLINK_IF)}
        checks.add("xdp-detached", not any(left.values()),
                   f"XDP programs left: {ACCESS_IF}: {_progs(left[ACCESS_IF])}; {UPLINK_IF}: {_progs(left[UPLINK_IF])}")
    return finish(report, checks, results)


def show_sessions() -> tuple[list[dict], str]:
    res = subprocess.run([*bng_cmd(), "show", "sessions", "--json"], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        return [], f"status {res.returncode}: {(res.stderr or res.stdout).strip()[-400:]}"
    try:
        return session_list(res.stdout), res.stdout.strip()
    except ValueError as exc:
        return [], f"unparsable ({exc}): {res.stdout.strip()[-400:]}"


def node_dial(method: str, steps: Steps, checks: Checks) -> dict:
    user = USERS[method][0]
    rep: dict = {"user": user}
    up = steps.wait(f"{method}-up")
    rep["client"] = up if isinstance(up, dict) else {}
    sessions, raw = show_sessions()
    say(f"node$ pfrps-bng show sessions --json  ->  {raw}")
    rep["sessions"], rep["sessions_raw"] = sessions, raw
    users = [session_user(s) for s in sessions]
    checks.add(f"{method}-session", len(sessions) == 1 and users == [user],
               f"{len(sessions)} session(s), users {users}, expected exactly one of {user}")
    rep["entries_up"] = dataplane_entries((ACCESS_IF, UPLINK_IF))
    checks.add(f"{method}-dataplane-up", sum(rep["entries_up"].values()) > 0,
               f"data-plane map entries with the session up: {rep['entries_up']}")
    steps.post(f"{method}-checked")
    steps.wait(f"{method}-down")
    t0 = time.monotonic()
    while True:
        sessions, raw = show_sessions()
        entries = dataplane_entries((ACCESS_IF, UPLINK_IF))
        if (not sessions and not sum(entries.values())) or time.monotonic() - t0 > 20:
            break
        time.sleep(1)
    rep["sessions_after"], rep["entries_after"] = sessions, entries
    say(f"node$ pfrps-bng show sessions --json  ->  {raw}")
    checks.add(f"{method}-hangup", not sessions and not sum(entries.values()),
               f"{len(sessions)} session(s) and data-plane entries {entries} "
               f"{time.monotonic() - t0:.1f} s after pppd hung up")
    steps.post(f"{method}-clean")
    return rep


def finish(report: dict, checks: Checks, results: Path, name: str = "node") -> int:
    report["checks"] = checks.items
    report["ok"] = checks.ok
    (results / f"{name}.json.tmp").write_text(json.dumps(report) + "\n")
    os.rename(results / f"{name}.json.tmp", results / f"{name}.json")
    return 0 if checks.ok else 1


# --- injector ---------------------------------------------------------------------------------

def pppd_argv(ifname: str, method: str, discovery_only: bool = False) -> list[str]:
    """Debian's pppd as a PPPoE subscriber: the kernel's PPPoE through the ``pppoe.so`` plugin
    (rp-pppoe.so is a link to it), ``user`` with the secret in /etc/ppp/{pap,chap}-secrets,
    the other protocols refused so that this dial authenticates with ``method`` (the BNG offers
    PAP first; pppd Naks it with CHAP-MD5 in the CHAP dial), no authentication of the BNG
    (``noauth``: /etc/ppp/options says ``auth``), the address from IPCP (``noipdefault``), DNS
    from it (``usepeerdns``), the default route through ppp0, IPv6CP (``+ipv6``), ppp0 (``unit
    0``), in the foreground with its debug log (``nodetach debug logfd 1``), one attempt."""
    refuse = {"pap": ["refuse-chap", "refuse-mschap", "refuse-mschap-v2", "refuse-eap"],
              "chap": ["refuse-pap", "refuse-mschap", "refuse-mschap-v2", "refuse-eap"]}[method]
    argv = ["pppd", "plugin", "pppoe.so", ifname, "user", USERS[method][0], *refuse, "noauth", "noipdefault",
            "usepeerdns", "defaultroute", "+ipv6", "unit", "0", "nodetach", "debug", "logfd", "1", "maxfail", "1"]
    if discovery_only:
        argv += ["lcp-max-configure", "3"]
    return argv


def wait_for(what: Callable[[], object], timeout: float, alive: Callable[[], bool] = lambda: True,
             every: float = 0.5) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive():
        got = what()
        if got:
            return got
        time.sleep(every)
    return None


def ppp0_addresses(family: str) -> list[dict]:
    try:
        doc = json.loads(sh("ip", "-j", family, "addr", "show", "dev", "ppp0", check=False) or "[]")
    except ValueError:
        return []
    return [a for link in doc for a in link.get("addr_info", [])]


def injector(cfg: dict, results: Path) -> int:
    steps = Steps(results, cfg.get("sync_timeout", 300))
    checks = Checks("injector")
    report: dict = {"dials": {}}
    ifname = cfg["injector_if"]
    ifindex, mac = link_up(ifname)
    say(f"injector: booted in {_uptime():.1f} s (guest uptime); {ifname} up, ifindex {ifindex}, {mac}")
    res = subprocess.run(["modprobe", "pppoe"], capture_output=True, text=True)
    mods = sorted(m for m in ("ppp_generic", "pppox", "pppoe") if Path(f"/sys/module/{m}").is_dir())
    checks.add("ppp-modules", res.returncode == 0 and len(mods) == 3 and Path("/dev/ppp").exists(),
               f"modprobe pppoe: status {res.returncode}{' ' + res.stderr.strip() if res.stderr.strip() else ''}; "
               f"loaded: {', '.join(mods)}; /dev/ppp {'present' if Path('/dev/ppp').exists() else 'missing'}")
    for method, (user, secret) in USERS.items():
        path = Path(f"/etc/ppp/{method}-secrets")
        path.write_text(f"# client\tserver\tsecret\tIP addresses\n{user}\t*\t{secret}\t*\n")
        path.chmod(0o600)
    # ppp0 takes its settings from "default" when pppd creates it: SLAAC from the BNG's RA
    sysctl("net.ipv6.conf.all.forwarding", "0")
    sysctl("net.ipv6.conf.default.accept_ra", "2")
    sysctl("net.ipv6.conf.default.autoconf", "1")
    ready = steps.wait("ready")
    if not (isinstance(ready, dict) and ready.get("ok")):
        checks.add("server-ready", False, "the node's server never got ready")
        return finish(report, checks, results, "injector")
    if cfg.get("server") == "ac":
        report["dials"]["pap"] = injector_discovery(ifname, checks)
        steps.post("ac-done")
        return finish(report, checks, results, "injector")
    try:
        for method in cfg.get("methods", ["pap", "chap"]):
            report["dials"][method] = injector_dial(ifname, method, steps, checks, cfg.get("up_timeout", 120))
            if not report["dials"][method].get("dialled"):
                break  # the node stops too (the dialled flag of <method>-up)
    except SystemExit as exc:  # a hand-over step that never came: the report still gets written
        checks.add("hand-over", False, str(exc))
    return finish(report, checks, results, "injector")


def injector_discovery(ifname: str, checks: Checks) -> dict:
    argv = pppd_argv(ifname, "pap", discovery_only=True)
    say("injector$ " + " ".join(argv))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    out = Streamer(proc, "pppd: ")
    got = wait_for(lambda: out.seen(r"PPP session is (\d+)"), 60, lambda: proc.poll() is None)
    status = stop(proc, timeout=30) if proc.poll() is None else proc.returncode
    out.join(timeout=10)
    info = parse_pppd_addresses(out.lines)
    checks.add("pppoe-discovery", bool(got) or "session" in info,
               f"pppd got PPPoE session {info.get('session')} from pfrps-ac (PADI/PADO/PADR/PADS); "
               f"pppd status {status}")
    return {"pppd": info, "pppd_status": status, "log": out.lines}


def injector_dial(ifname: str, method: str, steps: Steps, checks: Checks, up_timeout: float) -> dict:
    user = USERS[method][0]
    rep: dict = {"user": user, "dialled": False}
    argv = pppd_argv(ifname, method)
    say("injector$ " + " ".join(argv))
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    out = Streamer(proc, f"pppd({method}): ")
    alive = lambda: proc.poll() is None  # noqa: E731
    try:
        v4 = wait_for(lambda: [a for a in ppp0_addresses("-4") if a.get("local")], up_timeout, alive)
        v6 = wait_for(lambda: [a for a in ppp0_addresses("-6") if a.get("scope") == "global"
                               and not a.get("tentative")], max(10.0, up_timeout - (time.monotonic() - t0)), alive)
        rep["up_seconds"] = round(time.monotonic() - t0, 1)
        if v4:  # ppp0 may have its address before pppd's line about it reached us
            wait_for(lambda: out.seen(r"local\s+IP address"), 15, every=0.2)
        rep["pppd"] = parse_pppd_addresses(out.lines)
        rep["ipv4"] = [f"{a['local']}/{a.get('prefixlen')}" + (f" peer {a['address']}" if a.get("address") else "")
                       for a in (v4 or [])]
        rep["ipv6"] = [f"{a['local']}/{a.get('prefixlen')}" for a in (v6 or [])]
        rep["ipv6_ll"] = [f"{a['local']}/{a.get('prefixlen')}" for a in ppp0_addresses("-6")
                          if a.get("scope") == "link"]
        rep["routes6"] = sh("ip", "-6", "route", "show", "dev", "ppp0", check=False).strip().splitlines()
        rep["routes4"] = sh("ip", "-4", "route", "show", "dev", "ppp0", check=False).strip().splitlines()
        in4 = bool(v4) and all(ipaddress.ip_address(a["local"]) in ipaddress.ip_network(POOL4) for a in v4)
        checks.add(f"{method}-ipv4", in4 and rep["pppd"].get("local") == (v4[0]["local"] if v4 else None),
                   f"ppp0 {rep['ipv4'] or 'no IPv4 address'} (pppd: local {rep['pppd'].get('local')}, remote "
                   f"{rep['pppd'].get('remote')}, DNS {rep['pppd']['dns']}) in {POOL4}, "
                   f"{rep['pppd'].get('auth') or 'no'} authentication succeeded")
        in6 = bool(v6) and all(ipaddress.ip_address(a["local"]) in ipaddress.ip_network(POOL6) for a in v6)
        checks.add(f"{method}-ipv6", in6, f"ppp0 global {rep['ipv6'] or 'none'} in {POOL6} (link-local "
                   f"{rep['ipv6_ll']}, routes {rep['routes6']})")
        rep["dialled"] = bool(v4)
        ping = ("ping", "-c", "3", "-i", "0.5", "-W", "5")
        rep["ping4"] = parse_ping(sh(*ping, TARGET_V4, check=False, timeout=60))
        rep["ping6"] = parse_ping(sh(*ping, "-6", TARGET_V6, check=False, timeout=60))
        checks.add(f"{method}-ping", rep["ping4"] == (3, 3) and rep["ping6"] == (3, 3),
                   f"ping {TARGET_V4} {rep['ping4'][1]}/{rep['ping4'][0]}, "
                   f"ping -6 {TARGET_V6} {rep['ping6'][1]}/{rep['ping6'][0]}")
        steps.post(f"{method}-up", {k: rep.get(k) for k in ("user", "dialled", "ipv4", "ipv6", "pppd")})
        steps.wait(f"{method}-checked")
    finally:
        t1 = time.monotonic()
        status = stop(proc, timeout=30)
        out.join(timeout=10)
        rep["hangup_seconds"] = round(time.monotonic() - t1, 1)
        rep["pppd_status"] = status
        rep["log"] = out.lines
    # pppd exits 5 when a signal ended the link (EXIT_USER_REQUEST), after LCP Terminate and PADT
    checks.add(f"{method}-hangup", status == 5 and not Path("/sys/class/net/ppp0").exists(),
               f"pppd exited with status {status} {rep['hangup_seconds']} s after SIGTERM; "
               f"ppp0 {'still there' if Path('/sys/class/net/ppp0').exists() else 'gone'}")
    steps.post(f"{method}-down")
    steps.wait(f"{method}-clean")
    return rep


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``bng_guest.py NAME RUN_JSON``: run the guest's part; exit status 0 when its checks passed.
    ``bng_guest.py pfrps-bng ARGS``: :func:`run_bng`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["pfrps-bng"]:
        return run_bng(args[1:])
    if len(args) != 2 or args[0] not in ("node", "injector"):
        print("usage: python -m pfrps.qemu.bng_guest node|injector /mnt/results/run.json", file=sys.stderr)
        return 2
    path = Path(args[1])
    cfg = json.loads(path.read_text())
    return (node if args[0] == "node" else injector)(cfg, path.parent)


if __name__ == "__main__":
    sys.exit(main())
