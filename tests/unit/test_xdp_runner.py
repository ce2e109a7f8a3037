"""pfrps.xdp.runner.run_foreground: samples, JSON lines, stop by signal or duration, always closes."""

from __future__ import annotations

import io
import json
import os
import signal

import pytest

from pfrps.xdp.runner import StopSignals, run_foreground


class FakeAttachments:
    def __init__(self) -> None:
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


def test_duration_ends_with_a_final_sample_and_closes(capsys):
    att, calls, out = FakeAttachments(), [], io.StringIO()
    status = run_foreground(att, lambda t: calls.append(t) or [f"line {len(calls)}"], interval=0.02, duration=0.1,
                            json=False, out=out, startup="test")
    assert status == 0 and att.closes == 1
    assert 3 <= len(calls) <= 6  # about duration / interval samples, plus the final one
    assert calls == sorted(calls) and calls[-1] >= 0.1
    assert out.getvalue().splitlines() == [f"line {i + 1}" for i in range(len(calls))]
    err = capsys.readouterr().err
    assert "pfrps-xdp: test; Hit Ctrl-C to end." in err and "--duration: detached everything" in err


def test_json_lines_carry_elapsed():
    out = io.StringIO()
    run_foreground(FakeAttachments(), lambda t: {"XDP_PASS": {"rx_packets": 3}}, interval=0.02, duration=0.03,
                   json=True, out=out)
    lines = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert lines and all(ln["XDP_PASS"] == {"rx_packets": 3} and ln["elapsed"] >= 0 for ln in lines)


def test_signal_before_start_gives_one_sample_and_closes(capsys):
    """A SIGTERM that came while compiling/attaching ends the run at once, cleanly."""
    att, calls = FakeAttachments(), []
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # handled: sets the event, never kills
        assert stop.wait(5)
        status = run_foreground(att, lambda t: calls.append(t) or [], interval=60, duration=None, json=False,
                                stop=stop, out=io.StringIO())
        # a second signal while (or after) detaching is ignored, not an exception
        os.kill(os.getpid(), signal.SIGINT)
    assert status == 0 and att.closes == 1 and len(calls) == 1
    assert "SIGTERM: detached everything" in capsys.readouterr().err


def test_sample_error_still_closes():
    att = FakeAttachments()

    def boom(_t):
        raise OSError("map gone")
    with pytest.raises(OSError):
        run_foreground(att, boom, interval=0.01, duration=0.05, json=False, out=io.StringIO())
    assert att.closes == 1
