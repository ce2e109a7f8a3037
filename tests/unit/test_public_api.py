"""The public API exported by ``pfrps``: every name resolves, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pfrps


def test_every_exported_name_resolves():
    for name in pfrps.__all__:
        assert getattr(pfrps, name) is not None, name
    from pfrps import Handler, Supervisor, SupervisorConfig, WorkerContext  # noqa: F401
    from pfrps.supervisor import Supervisor as S

    assert Supervisor is S
    assert issubclass(pfrps.UsageError, pfrps.PfrpsError)


def test_hashing_predictors_live_in_pfrps_hashing_only():
    """The test/planning helpers are not the handler API: ``pfrps.hashing`` has them, ``pfrps`` does not."""
    from pfrps.hashing import expected_counts, worker_for  # noqa: F401

    for name in ("worker_for", "expected_counts", "mac_hash", "ALGORITHMS", "parse_mac", "format_mac"):
        assert name not in pfrps.__all__, name
        assert not hasattr(pfrps, name), name


def test_unknown_name_raises_attribute_error():
    try:
        pfrps.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light():
    code = ("import sys, pfrps, pfrps.ac; from pfrps import Supervisor; "
            "print(sorted(m for m in ('bcc', 'scapy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
