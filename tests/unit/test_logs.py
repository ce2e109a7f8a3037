"""Log files survive rotation, and a failed reopen never raises (pfrps.logs)."""

from __future__ import annotations

import errno
import logging
import os
import stat

import pytest

from pfrps.logs import RotatableFileHandler, _Formatter, reopen_log_files
from pfrps.privileges import unreachable_dir


@pytest.fixture
def file_logger(tmp_path):
    path = tmp_path / "pfrps.log"
    handler = RotatableFileHandler(str(path), "pfrps")
    handler.setFormatter(_Formatter("pfrps"))
    logger = logging.getLogger("pfrps.test-logs")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    yield path, handler, logger
    logger.handlers.clear()
    handler.close()


def test_reopens_after_rotation(file_logger):
    path, _, logger = file_logger
    logger.info("one")
    path.rename(path.with_suffix(".log.1"))
    logger.info("two")
    assert path.with_suffix(".log.1").read_text() == "pfrps: one\n"
    assert path.read_text() == "pfrps: two\n"


@pytest.mark.parametrize("where", ["stat", "open"])
def test_failed_reopen_keeps_old_file_and_warns_once(file_logger, monkeypatch, where):
    path, handler, logger = file_logger
    logger.info("before")
    path.rename(path.with_suffix(".log.1"))
    denied = OSError(errno.EACCES, os.strerror(errno.EACCES))
    if where == "stat":
        real_stat = os.stat

        def fake_stat(p, *a, **kw):
            if str(p) == str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))
            return real_stat(p, *a, **kw)

        monkeypatch.setattr(os, "stat", fake_stat)
    else:
        monkeypatch.setattr(handler, "_open", lambda: (_ for _ in ()).throw(denied))
    logger.warning("after 1")  # emit() reopens first: must not raise
    handler.acquire()
    try:
        handler.reopenIfNeeded()  # nor may SIGHUP's explicit reopen
    finally:
        handler.release()
    logger.error("after 2")
    monkeypatch.undo()
    text = path.with_suffix(".log.1").read_text().splitlines()
    assert text == [
        "pfrps: before",
        f"pfrps: warning: cannot reopen log file {path}: Permission denied; still writing to the file opened before",
        "pfrps: warning: after 1",
        "pfrps: error: after 2",
    ]
    assert not path.exists()
    logger.info("recovered")  # once the path can be opened again, the new file is used
    assert path.read_text() == "pfrps: recovered\n"


def test_reopen_log_files_touches_only_file_handlers(tmp_path):
    root = logging.getLogger()
    saved = root.handlers[:]
    path = tmp_path / "a.log"
    fh = RotatableFileHandler(str(path))
    root.handlers[:] = [logging.StreamHandler(), fh]
    try:
        path.rename(tmp_path / "a.log.1")
        reopen_log_files()
        assert path.exists()
    finally:
        root.handlers[:] = saved
        fh.close()


def test_unreachable_dir(open_tmp):
    assert unreachable_dir(str(open_tmp / "x.log"), 65534, 65534) is None
    closed = open_tmp / "closed"
    opened = closed / "opened"
    opened.mkdir(parents=True)
    os.chmod(opened, 0o777)
    os.chmod(closed, 0o700)
    st = os.stat(closed)
    nobody = (65534, 65534)
    assert unreachable_dir(str(opened / "x.log"), *nobody) == str(closed)
    assert unreachable_dir(str(opened / "x.log"), st.st_uid, 12345) is None  # the owner may
    os.chmod(closed, 0o710)
    assert unreachable_dir(str(opened / "x.log"), 54321, st.st_gid) is None  # the group may
    assert unreachable_dir(str(opened / "x.log"), *nobody) == str(closed)
    os.chmod(closed, 0o701)
    assert unreachable_dir(str(opened / "x.log"), *nobody) is None  # others may
    assert stat.S_IMODE(os.stat(closed).st_mode) == 0o701
