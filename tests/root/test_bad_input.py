"""Bad input on a real system: one line naming problem and fix, exit 2, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from pfrps.bpfload import bpf_source_dir
from tests.conftest import bpf_program_ids
from tests.helpers import PY, assert_bad_input, last_json
from tests.root.conftest import inject, start_pfrps

pytestmark = pytest.mark.root


def run_in_node(topo, args, env=None, uid=None, module="pfrps"):
    from pyroute2 import netns

    def pre():
        netns.setns(topo.node, flags=0)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    before = bpf_program_ids()
    res = subprocess.run([PY, "-m", module, *args], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, **(env or {})), preexec_fn=pre)
    assert bpf_program_ids() - before == set(), "a BPF program outlived the failed run"
    return res


def test_missing_interface(topo):
    assert_bad_input(run_in_node(topo, ["-i", "nosuch0", "-w", "2"]), "pfrps", "interface 'nosuch0' not found", "ip link")


def test_down_interface(topo):
    from pyroute2 import IPRoute

    with IPRoute(netns=topo.node, flags=0) as ipr:
        ipr.link("add", ifname="pfdown0", kind="veth", peer={"ifname": "pfdown1"})
    try:
        assert_bad_input(run_in_node(topo, ["-i", "pfdown0", "-w", "2"]), "pfrps", "'pfdown0' is down",
                         "ip link set pfdown0 up")
    finally:
        with IPRoute(netns=topo.node, flags=0) as ipr:
            ipr.link("del", index=ipr.link_lookup(ifname="pfdown0")[0])


def test_not_an_ethernet_interface(topo):
    assert_bad_input(run_in_node(topo, ["-i", "lo"]), "pfrps", "not an Ethernet link")


def test_without_root(topo):
    line = assert_bad_input(run_in_node(topo, ["-i", topo.node_if, "-w", "2"], uid=65534), "pfrps",
                            "missing capabilities CAP_NET_RAW, CAP_BPF", "run as root")
    assert "sudo" in line


def test_pfinject_without_root(topo):
    from pyroute2 import netns

    def pre():
        netns.setns(topo.injector, flags=0)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    res = subprocess.run([PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac, "-p", "1"],
                         capture_output=True, text=True, timeout=60, preexec_fn=pre)
    assert_bad_input(res, "pfinject", "CAP_NET_RAW")


def test_bcc_not_importable(topo, tmp_path):
    fake = tmp_path / "bcc"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('libbcc.so.0: cannot open shared object file')\n")
    res = run_in_node(topo, ["-i", topo.node_if, "-w", "2"], env={"PYTHONPATH": str(tmp_path)})
    assert_bad_input(res, "pfrps", "bcc is not importable", "python3-bpfcc")


def test_kernel_headers_missing(topo, tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import platform\nplatform.release = lambda: '0.0.0-no-headers'\n")
    env = {"PYTHONPATH": str(tmp_path), "BCC_KERNEL_SOURCE": ""}
    res = run_in_node(topo, ["-i", topo.node_if, "-w", "2"], env=env)
    assert_bad_input(res, "pfrps", "no kernel headers for 0.0.0-no-headers", "./run setup")


def test_program_file_missing(topo):
    assert_bad_input(run_in_node(topo, ["-i", topo.node_if, "-b", "/nonexistent/x.bpf.c"]), "pfrps",
                     "not found", "-b")


def test_program_does_not_compile(topo, tmp_path):
    bad = tmp_path / "broken.bpf.c"
    bad.write_text("int pfrps_filter(struct __sk_buff *skb) { return undeclared_thing; }\n")
    line = assert_bad_input(run_in_node(topo, ["-i", topo.node_if, "-w", "2", "-b", str(bad)]), "pfrps",
                            "broken.bpf.c does not compile", "undeclared_thing")
    assert "error:" in line


def test_program_without_entry_point(topo, tmp_path):
    src = tmp_path / "noentry.bpf.c"
    src.write_text('#include "pfrps.h"\nBPF_ARRAY(pfrps_opts, struct pfrps_opts, 1);\n'
                   "int other(struct __sk_buff *skb) { return 0; }\n")
    assert_bad_input(run_in_node(topo, ["-i", topo.node_if, "-w", "2", "-b", str(src)]), "pfrps",
                     "has no function 'pfrps_filter'")


def test_custom_program_is_used(topo, tmp_path):
    """-b with a program that steers everything to worker 0 (hash ignored)."""
    src = tmp_path / "all_to_zero.bpf.c"
    src.write_text(textwrap.dedent("""\
        #include <uapi/linux/bpf.h>
        #include "pfrps.h"
        BPF_ARRAY(pfrps_opts, struct pfrps_opts, 1);
        int pfrps_filter(struct __sk_buff *skb) {
            int key = 0;
            struct pfrps_opts *o = pfrps_opts.lookup(&key);
            if (!o || o->worker_id != 0)
                return 0;
            return skb->len;
        }
        """))
    run = start_pfrps(topo, "-w", "3", "-b", str(src), "--json", "-c", "400", "--duration", "30")
    assert run.ready
    inject(topo, "-p", "400", "--seed", "3")
    status, out, err = run.finish()
    assert status == 0, err
    snap = last_json(out)
    assert snap["frames"] == [400, 0, 0]
    assert f"program {src}" in err


def test_builtin_sources_not_taken_from_cwd(topo, tmp_path):
    """A stray bpf/ in the working directory is ignored: sources come from the package."""
    (tmp_path / "bpf").mkdir()
    (tmp_path / "bpf" / "rps_filter.bpf.c").write_text("this is not C\n")
    from pyroute2 import netns

    res = subprocess.run([PY, "-m", "pfrps", "-i", topo.node_if, "-w", "2", "--duration", "0.5"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: netns.setns(topo.node, flags=0))
    assert res.returncode == 0, res.stderr
    assert Path(bpf_source_dir()) != tmp_path / "bpf"
