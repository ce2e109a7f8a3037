"""The raw bpf(2) wrappers of pfrps.bpfsys: maps, pins, program loading, test runs."""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile

import pytest

from pfrps import bpfsys
from pfrps.errors import BpfLoadError

pytestmark = pytest.mark.root

ARRAY, HASH = 2, 1
SOCKET_FILTER = 1


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn (uapi/linux/bpf.h): u8 code, u8 dst:4 src:4, s16 off, s32 imm."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


MOV64_IMM, EXIT = 0xB7, 0x95
RET_42 = insn(MOV64_IMM, dst=0, imm=42) + insn(EXIT)


def test_array_map_update_lookup_keys():
    fd = bpfsys.map_create(ARRAY, 4, 8, 3, name="bpfsys_arr")
    try:
        bpfsys.map_update(fd, struct.pack("<I", 1), struct.pack("<Q", 0xDEADBEEF))
        assert bpfsys.map_lookup(fd, struct.pack("<I", 1), 8) == struct.pack("<Q", 0xDEADBEEF)
        assert bpfsys.map_lookup(fd, struct.pack("<I", 0), 8) == bytes(8)  # arrays are zero-filled
        assert bpfsys.map_lookup(fd, struct.pack("<I", 3), 8) is None      # out of range: ENOENT
        assert list(bpfsys.map_keys(fd, 4)) == [struct.pack("<I", i) for i in range(3)]
        with pytest.raises(BpfLoadError) as exc:
            bpfsys.map_update(fd, struct.pack("<I", 3), bytes(8))
        assert exc.value.code == 7  # E2BIG
        with pytest.raises(BpfLoadError):
            bpfsys.map_delete(fd, struct.pack("<I", 0))  # array entries cannot be deleted: EINVAL
    finally:
        os.close(fd)


def test_hash_map_flags_delete_keys():
    fd = bpfsys.map_create(HASH, 6, 4, 16, name="bpfsys_hash")
    try:
        macs = [bytes([2, 0, 0, 0, 0, i]) for i in range(5)]
        for i, mac in enumerate(macs):
            bpfsys.map_update(fd, mac, struct.pack("<I", i), bpfsys.BPF_NOEXIST)
        with pytest.raises(BpfLoadError) as exc:
            bpfsys.map_update(fd, macs[0], bytes(4), bpfsys.BPF_NOEXIST)
        assert exc.value.code == 17  # EEXIST
        assert sorted(bpfsys.map_keys(fd, 6)) == macs
        assert bpfsys.map_delete(fd, macs[2]) is True
        assert bpfsys.map_delete(fd, macs[2]) is False
        assert bpfsys.map_lookup(fd, macs[2], 4) is None
        assert bpfsys.map_lookup(fd, macs[4], 4) == struct.pack("<I", 4)
        assert sorted(bpfsys.map_keys(fd, 6)) == [m for m in macs if m != macs[2]]
    finally:
        os.close(fd)


def test_bad_name_is_refused_before_the_kernel():
    with pytest.raises(BpfLoadError, match="0-15 characters"):
        bpfsys.map_create(ARRAY, 4, 4, 1, name="a-name-far-too-long")


def test_prog_load_test_run_and_name():
    fd = bpfsys.prog_load(SOCKET_FILTER, RET_42, name="pfrps_bpfsys")
    try:
        assert bpfsys.prog_test_run(fd, bytes(64))[0] == 42
        assert bpfsys.prog_name(fd) == "pfrps_bpfsys"
        assert bpfsys.prog_id(fd) > 0
    finally:
        os.close(fd)


def test_prog_load_failure_carries_the_verifier_log():
    no_exit = insn(MOV64_IMM, dst=0, imm=0)  # falls off the end
    with pytest.raises(BpfLoadError) as exc:
        bpfsys.prog_load(SOCKET_FILTER, no_exit, name="bpfsys_bad")
    assert exc.value.code == 22  # EINVAL
    assert "bpfsys_bad" in exc.value.msg and ": " in exc.value.msg.split(")", 1)[1]
    with pytest.raises(BpfLoadError, match="8-byte instructions"):
        bpfsys.prog_load(SOCKET_FILTER, b"\x00" * 5)


def test_prog_load_with_a_map_reference():
    """r1 = map (BPF_LD_IMM64 pseudo map fd), r2 = &key, lookup, return value or 0."""
    mfd = bpfsys.map_create(ARRAY, 4, 4, 1, name="bpfsys_val")
    bpfsys.map_update(mfd, bytes(4), struct.pack("<I", 1234))
    code = b"".join([
        insn(0x62, dst=10, off=-4, imm=0),                  # *(u32 *)(r10 - 4) = 0
        insn(0xBF, dst=2, src=10), insn(0x07, dst=2, imm=-4),  # r2 = r10 - 4
        insn(0x18, dst=1, src=1, imm=mfd), insn(0),           # r1 = map fd (ld_imm64, 2 slots)
        insn(0x85, imm=1),                                  # call bpf_map_lookup_elem
        insn(0x15, dst=0, off=2, imm=0),                    # if r0 == 0 goto +2
        insn(0x61, dst=0, src=0), insn(EXIT),               # r0 = *(u32 *)r0; exit
        insn(MOV64_IMM, dst=0, imm=0), insn(EXIT),
    ])
    try:
        fd = bpfsys.prog_load(SOCKET_FILTER, code, name="pfrps_bpfsysmap")
        try:
            assert bpfsys.prog_test_run(fd, bytes(64))[0] == 1234
        finally:
            os.close(fd)
    finally:
        os.close(mfd)


def test_pin_and_get_in_a_private_bpffs():
    d = tempfile.mkdtemp(prefix="bpfsys-bpffs-")
    subprocess.run(["mount", "-t", "bpf", "bpf", d], check=True)
    fd = bpfsys.map_create(ARRAY, 4, 4, 1, name="bpfsys_pin")
    try:
        bpfsys.map_update(fd, bytes(4), struct.pack("<I", 77))
        path = os.path.join(d, "m")
        bpfsys.obj_pin(fd, path)
        with pytest.raises(BpfLoadError) as exc:
            bpfsys.obj_pin(fd, path)
        assert exc.value.code == 17  # EEXIST
        fd2 = bpfsys.obj_get(path)
        try:
            assert bpfsys.map_lookup(fd2, bytes(4), 4) == struct.pack("<I", 77)
        finally:
            os.close(fd2)
        os.unlink(path)
        with pytest.raises(BpfLoadError) as exc:
            bpfsys.obj_get(path)
        assert exc.value.code == 2  # ENOENT
    finally:
        os.close(fd)
        subprocess.run(["umount", d], check=True)
        os.rmdir(d)


def test_the_suites_leak_check_counts_only_programs_pfrps_loaded():
    from tests.conftest import bpf_program_ids  # noqa: PLC0415

    ours = bpfsys.prog_load(SOCKET_FILTER, RET_42, name="pfrps_bpfsys_lk")
    other = _load_without_registry()
    try:
        ids = bpf_program_ids()
        assert bpfsys.prog_id(ours) in ids       # loaded through pfrps: a leak if it stays
        assert bpfsys.prog_id(other) not in ids  # another tool's program: never counted
    finally:
        os.close(ours)
        os.close(other)
    assert bpfsys.prog_id(ours := bpfsys.prog_load(SOCKET_FILTER, RET_42)) in bpf_program_ids()
    os.close(ours)


def _load_without_registry() -> int:
    saved = os.environ.pop(bpfsys.REGISTRY_ENV, None)
    try:
        return bpfsys.prog_load(SOCKET_FILTER, RET_42, name="bpfsys_other")
    finally:
        if saved is not None:
            os.environ[bpfsys.REGISTRY_ENV] = saved
