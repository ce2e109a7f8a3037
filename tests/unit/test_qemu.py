"""./run qemu without booting: guest command lines, image cache key, result parsing, accelerator
choice, the run lock, and a failed image build leaving nothing in the cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pfrps.errors import UsageError
from pfrps.qemu import image as qimage
from pfrps.qemu.cli import RunLock, Tail, read_results
from pfrps.qemu.guest import guest_ring_args, parse_seed_line
from pfrps.qemu.machine import NODE_MAC, GuestSpec, choose_accel, cpu_flags, guest_argv, kernel_cmdline

K, I, R, SRC, RES = Path("/c/vmlinuz"), Path("/c/initrd.img"), Path("/c/root.img"), Path("/src"), Path("/r/results")


def _opt(argv, flag):
    """Every value following ``flag`` in ``argv``."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def node_spec(**kw):
    kw.setdefault("serial", Path("/r/node.serial"))
    return GuestSpec("node", NODE_MAC, "enp1s0", sock=Path("/r/node.sock"), peer_sock=Path("/r/injector.sock"), **kw)


def injector_spec(**kw):
    return GuestSpec("injector", "52:54:00:01:02:03", "eno1", serial=Path("/r/injector.serial"),
                     sock=Path("/r/injector.sock"), peer_sock=Path("/r/node.sock"), **kw)


def test_node_argv_nic_on_root_port_with_seed_mac_and_offloads_off():
    argv = guest_argv(node_spec(), K, I, R, SRC, RES)
    devices = _opt(argv, "-device")
    assert "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1" in devices
    nic = [d for d in devices if d.startswith("virtio-net-pci")]
    assert nic == [f"virtio-net-pci,id=nic0,netdev=net0,mac={NODE_MAC},bus=rp1,"
                   "guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,addr=0x0"]
    assert _opt(argv, "-netdev") == ["dgram,id=net0,local.type=unix,local.path=/r/node.sock,"
                                     "remote.type=unix,remote.path=/r/injector.sock"]
    assert _opt(argv, "-smbios") == []
    assert _opt(argv, "-machine") == ["q35"] and "-no-reboot" in argv
    assert _opt(argv, "-kernel") == [str(K)] and _opt(argv, "-initrd") == [str(I)]
    assert _opt(argv, "-drive") == [f"file={R},format=raw,if=none,id=disk0,snapshot=on"]
    assert _opt(argv, "-virtfs") == ["local,path=/src,mount_tag=src,security_model=none,readonly=on,id=src",
                                     "local,path=/r/results,mount_tag=results,security_model=none,id=results"]
    assert _opt(argv, "-serial") == ["file:/r/node.serial"]
    assert _opt(argv, "-accel") == ["tcg,thread=multi"] and _opt(argv, "-cpu") == ["max"]
    assert _opt(argv, "-smp") == ["2"] and _opt(argv, "-m") == ["1024"]


def test_injector_argv_eno1_from_smbios_type41_and_crossed_sockets():
    argv = guest_argv(injector_spec(), K, I, R, SRC, RES, accel="kvm")
    assert _opt(argv, "-smbios") == ["type=41,designation=eno1,kind=ethernet,instance=1,pcidev=nic0"]
    nic = [d for d in _opt(argv, "-device") if d.startswith("virtio-net-pci")]
    assert nic == ["virtio-net-pci,id=nic0,netdev=net0,mac=52:54:00:01:02:03,bus=pcie.0,"
                   "guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off"]
    assert not any(d.startswith("pcie-root-port") for d in _opt(argv, "-device"))
    assert "local.path=/r/injector.sock,remote.type=unix,remote.path=/r/node.sock" in _opt(argv, "-netdev")[0]
    assert _opt(argv, "-accel") == ["kvm"] and _opt(argv, "-cpu") == ["host"]


def test_tap_link_multi_queue():
    spec = node_spec(queues=4)
    spec.tap = "px9n000001"
    argv = guest_argv(spec, K, I, R, SRC, RES)
    assert _opt(argv, "-netdev") == ["tap,id=net0,ifname=px9n000001,script=no,downscript=no,vhost=off,queues=4"]
    nic = [d for d in _opt(argv, "-device") if d.startswith("virtio-net-pci")][0]
    assert nic.endswith(",mq=on,vectors=10,addr=0x0")


def test_kernel_cmdline_script_hostname_and_shell():
    line = kernel_cmdline(node_spec())
    assert "pfrps.script=pfrps/qemu/files/guest-run" in line.split() and "systemd.hostname=node" in line.split()
    assert "systemd.mask=serial-getty@ttyS0.service" in line and "pfrps.shell=1" not in line
    shell = kernel_cmdline(node_spec(shell=True))
    assert "pfrps.shell=1" in shell.split() and "serial-getty" not in shell
    argv = guest_argv(node_spec(shell=True, serial=None), K, I, R, SRC, RES)
    assert _opt(argv, "-serial") == ["mon:stdio"]


FLAGS = "processor\t: 0\nflags\t\t: fpu vme sse4_2 {extra} hypervisor\n"


@pytest.mark.parametrize("extra,kvm_ok,probe_ok,want,expect", [
    ("", True, True, "auto", "tcg"),          # no vmx/svm (this machine: kvm_pvm) -> TCG, no probe
    ("vmx", False, True, "auto", "tcg"),      # /dev/kvm does not open
    ("vmx", True, False, "auto", "tcg"),      # probe boot failed
    ("svm", True, True, "auto", "kvm"),
    ("vmx", True, True, "auto", "kvm"),
    ("vmx", True, True, "tcg", "tcg"),        # forced
])
def test_accelerator_choice(extra, kvm_ok, probe_ok, want, expect):
    probes = []

    def probe():
        probes.append(1)
        return probe_ok

    accel, why = choose_accel(cpu_flags(FLAGS.format(extra=extra)), kvm_ok, probe, want)
    assert accel == expect and why.startswith(expect.upper())
    assert len(probes) == (1 if extra and kvm_ok and want == "auto" else 0)


def _inputs(tmp_path):
    f = tmp_path / "unit.service"
    f.write_text("[Unit]\n")
    return ["numpy==2.4.6", "scapy==2.8.0"], [f]


def test_cache_key_stable_and_changes_with_every_input(tmp_path):
    reqs, files = _inputs(tmp_path)
    key = qimage.cache_key(reqs, files)
    assert len(key) == 16 and int(key, 16) >= 0
    assert qimage.cache_key(list(reqs), list(files)) == key
    assert qimage.cache_key(["numpy==2.4.5", "scapy==2.8.0"], files) != key
    assert qimage.cache_key(reqs, files, packages=qimage.IMAGE_PACKAGES + ("vim",)) != key
    assert qimage.cache_key(reqs, files, suite="trixie") != key
    files[0].write_text("[Unit]\nDescription=changed\n")
    assert qimage.cache_key(reqs, files) != key


def test_pinned_requirements_are_the_host_venv_minus_pfrps():
    reqs = qimage.pinned_requirements(sys.executable)
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"numpy", "pyroute2", "scapy", "uvloop"} <= names
    assert "pfrps" not in names and all("==" in r for r in reqs)


def test_mmdebstrap_argv_offline_wheels_and_packages(tmp_path):
    argv = qimage.mmdebstrap_argv(tmp_path / "root", Path("/w"), Path("/f"))
    assert argv[:4] == ["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory"]
    assert argv[-3:] == ["bookworm", str(tmp_path / "root"), qimage.MIRROR]
    inc = [a for a in argv if a.startswith("--include=")][0]
    assert {"linux-image-amd64", "linux-headers-amd64", "python3-bpfcc", "bpftool",
            "ppp", "iputils-ping"} <= set(inc[10:].split(","))  # ppp, ping: python -m pfrps.qemu.bng
    hook = [a for a in argv if a.startswith("--customize-hook=")][0]
    assert "--no-index" in hook and "--find-links /tmp/wheels" in hook and "dist-packages/bcc" in hook


def test_failed_image_build_shows_log_tail_and_leaves_nothing(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(qimage, "pinned_requirements", lambda py: ["numpy==2.4.6"])
    monkeypatch.setattr(qimage, "wheelhouse", lambda *a, **k: tmp_path)
    monkeypatch.setattr(qimage.shutil, "which", lambda tool: "/bin/" + tool)
    monkeypatch.setattr(qimage, "mmdebstrap_argv",
                        lambda target, *a, **k: ["sh", "-c", f"mkdir -p {target}; echo E: boom; exit 3"])
    with pytest.raises(qimage.ImageBuildError) as exc:
        qimage.ensure_image(sys.executable, cache, say=lambda s: None)
    assert "mmdebstrap failed (status 3)" in exc.value.msg and "E: boom" in exc.value.msg
    assert exc.value.exit_status == 1
    assert sorted(p.name for p in cache.iterdir()) == [p.name for p in cache.glob("image-*.log")]


def test_missing_mmdebstrap_names_setup(tmp_path, monkeypatch):
    monkeypatch.setattr(qimage, "pinned_requirements", lambda py: ["numpy==2.4.6"])
    monkeypatch.setattr(qimage.shutil, "which", lambda tool: None)
    with pytest.raises(UsageError) as exc:
        qimage.ensure_image(sys.executable, tmp_path, say=lambda s: None)
    assert exc.value.exit_status == 2 and "mmdebstrap is not installed" in exc.value.one_line()
    assert "setup-host.sh" in exc.value.one_line()


@pytest.mark.parametrize("line,want", [
    ("#0:0478 #1:0502 #2:0490 #3:0530 (total:2000 std_dev:19.287302)", ([478, 502, 490, 530], 2000)),
    ("#0:3142 (total:3142 std_dev:0.000000) drops #0:12 (total:12)", ([3142], 3142)),
    ("pfrps: 4 workers ready in 10.980 s", None),
    ("node$ pfrps -i enp1s0 -w 4", None),
])
def test_parse_seed_line(line, want):
    assert parse_seed_line(line) == want


def test_read_results(tmp_path):
    (tmp_path / "node.out").write_text("node$ pfrps\n#0:0001 #1:0000 (total:1 std_dev:0.5)\n"
                                       "#0:0002 #1:0003 (total:5 std_dev:0.5)\nxdp: OK\n")
    (tmp_path / "node.status").write_text("0\n")
    (tmp_path / "node.json").write_text('{"xdp": {"mode": "native"}}\n')
    (tmp_path / "injector.out").write_text("injector$ pfinject\n")
    res = read_results(tmp_path)
    assert res["node"]["status"] == 0 and res["node"]["last"] == ([2, 3], 5)
    assert res["injector"]["status"] is None and res["injector"]["last"] is None
    assert res["node_json"] == {"xdp": {"mode": "native"}}


def test_tail_returns_complete_lines_only(tmp_path):
    f = tmp_path / "out"
    tail = Tail(f)
    assert tail.lines() == []
    f.write_bytes(b"one\ntw")
    assert tail.lines() == ["one"]
    with open(f, "ab") as fh:
        fh.write(b"o\nthree\n")
    assert tail.lines() == ["two", "three"]


def test_run_lock_refuses_a_second_holder_naming_the_pid(tmp_path):
    first = RunLock(tmp_path / "lock").acquire()
    try:
        with pytest.raises(UsageError) as exc:
            RunLock(tmp_path / "lock").acquire()
        assert exc.value.exit_status == 2
        assert f"another ./run qemu is running (pid {os.getpid()}" in exc.value.one_line()
    finally:
        first.release()
    assert not (tmp_path / "lock").exists()
    RunLock(tmp_path / "lock").acquire().release()


@pytest.mark.parametrize("workers,blocks", [(1, 256), (8, 256), (16, 256), (32, 128), (64, 64), (1024, 16)])
def test_guest_ring_lasts_longer_than_a_descheduled_vcpu(workers, blocks):
    assert guest_ring_args(workers) == ["--ring-blocks", str(blocks), "--ring-block-size", "65536"]


def test_missing_qemu_names_setup(monkeypatch):
    from pfrps.qemu import cli
    monkeypatch.setattr(cli.shutil, "which", lambda tool: None)
    with pytest.raises(UsageError) as exc:
        cli.run(cli.build_parser().parse_args([]))
    assert exc.value.exit_status == 2
    assert exc.value.one_line().startswith("qemu-system-x86_64 is not installed; run tools/setup-host.sh")


@pytest.mark.parametrize("argv,needle", [(["-w", "0"], "worker count 0 is out of range 1..1024"),
                                         (["--link", "vde"], "invalid choice: 'vde'"),
                                         (["--timeout", "-1"], "-1 must be above 0")])
def test_bad_arguments_one_line_exit_2(argv, needle, capsys):
    from pfrps.qemu import cli
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("pfrps-qemu: error: ") and needle in err


def test_sweep_stale_removes_a_killed_runs_folder(tmp_path, monkeypatch, capsys):
    from pfrps.qemu import cli
    from pyroute2 import netns
    monkeypatch.setattr(netns, "listnetns", lambda: [])
    (tmp_path / "px9-dead0001").mkdir()
    (tmp_path / "px9-dead0001" / "node.sock").write_text("")
    (tmp_path / "other").mkdir()
    assert cli.sweep_stale(tmp_path) == ["px9-dead0001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    assert "left by a run that was killed" in capsys.readouterr().out


class _FakeQemu:
    """A QEMU process stand-in for wait_guests: ends when stopped, or by itself when ``done``."""

    def __init__(self, done: bool) -> None:
        self.returncode = 0 if done else None

    def poll(self):
        return self.returncode

    def terminate(self) -> None:
        self.returncode = -15

    kill = terminate

    def wait(self, timeout=None):
        return self.returncode


def test_wait_guests_stops_the_other_guest_when_one_failed(tmp_path, capsys):
    """The node powered off with status 1 while the injector still runs: on_failure runs once and
    stops it, the output lines are shown, and verdict names the failed part (RunError, exit 1)."""
    from pfrps.qemu import cli
    (tmp_path / "node.status").write_text("1\n")
    (tmp_path / "node.out").write_text("node: booted\nnode: check x: FAILED\n")
    (tmp_path / "injector.out").write_text("injector: booted\n")
    procs = {"node": _FakeQemu(done=True), "injector": _FakeQemu(done=False)}
    specs = {name: GuestSpec(name, NODE_MAC, "eno1") for name in procs}
    calls = []

    def on_failure(tails) -> None:
        calls.append(sorted(tails))
        cli._stop(procs)
    first = cli.wait_guests(procs, specs, tmp_path, 0.0, 1e9, on_failure=on_failure)
    assert calls == [["injector", "node"]] and procs["injector"].returncode == -15
    assert sorted(first) == ["injector", "node"]
    assert capsys.readouterr().out.splitlines() == ["node: booted", "node: check x: FAILED", "injector: booted"]
    res = cli.read_results(tmp_path)
    with pytest.raises(cli.RunError, match=r"node's part failed with status 1; injector powered off without"):
        cli.verdict(procs, specs, res, first, 0.0, 1.0, 0.0, 0.0, "tcg", tmp_path)
    assert capsys.readouterr().out.startswith("qemu: node status 1, injector status None; times (tcg)")


def test_guest_files_are_package_data_found_relative_to_the_package():
    """The guest scripts and image files live in pfrps/qemu/files/ (no top-level qemu/): the
    scripts named by pfrps.script= exist under the shared checkout, and the image's only hook is a
    .pth line putting that checkout (/mnt/src) on sys.path, as import names match directories."""
    import pfrps
    from pfrps.qemu.bng import BNG_SCRIPT
    from pfrps.qemu.machine import GUEST_SCRIPT
    root = qimage.checkout_root()
    assert root == Path(pfrps.__file__).resolve().parent.parent
    assert qimage.files_dir() == Path(pfrps.__file__).resolve().parent / "qemu" / "files"
    assert (GUEST_SCRIPT, BNG_SCRIPT) == ("pfrps/qemu/files/guest-run", "pfrps/qemu/files/bng-run")
    for script in (GUEST_SCRIPT, BNG_SCRIPT):
        assert os.access(root / script, os.X_OK), script
    names = [p.name for p in qimage.image_files()]
    assert names == ["autologin.conf", "pfrps-guest-boot", "pfrps-guest.service", "pfrps_checkout.pth"]
    assert (qimage.files_dir() / "image" / "pfrps_checkout.pth").read_text() == "/mnt/src\n"
    hook = qimage.mmdebstrap_argv(Path("/t"), Path("/w"), qimage.files_dir() / "image")[-4]
    assert "pfrps_checkout.pth" in hook and "pfrps_checkout.py" not in hook
