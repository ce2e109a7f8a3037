"""Send frames through a PF_PACKET socket, optionally paced to a rate."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..packet import open_tx_socket

__all__ = ["SendResult", "Injector", "sleep_until"]


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline`` (seconds), spinning the last 0.2 ms
    so short waits are not stretched by the sleep's wake-up latency."""
    left = deadline - time.perf_counter()
    if left > 0.0003:
        time.sleep(left - 0.0002)
    while time.perf_counter() < deadline:
        pass


@dataclass
class SendResult:
    """What an injection did: ``frames`` and ``bytes`` sent, ``seconds`` taken, ``retries``
    (sends that found the socket's buffer full and waited)."""

    frames: int
    bytes: int
    seconds: float
    retries: int = 0

    @property
    def rate(self) -> float:
        """Frames per second achieved."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Injector:
    """A transmit PF_PACKET socket on ``ifname``.

    Args:
        ifname: interface to send on (current network namespace).
        qdisc_bypass: PACKET_QDISC_BYPASS.
        sndbuf: send buffer, bytes (0: the kernel's default).

    Raises:
        pfrps.errors.InterfaceError, pfrps.errors.PrivilegeError: see :func:`pfrps.packet.open_tx_socket`.
    """

    def __init__(self, ifname: str, qdisc_bypass: bool = False, sndbuf: int = 0) -> None:
        self.ifname = ifname
        self.sock = open_tx_socket(ifname, sndbuf=sndbuf, qdisc_bypass=qdisc_bypass)

    def send_batches(self, batches: "Callable[[int], Optional[np.ndarray]]", rate: float = 0.0,
                     batch: int = 256) -> SendResult:
        """Send frames from ``batches(n)`` (an ``(<=n, L)`` uint8 array, or None when done).

        Args:
            rate: frames/s to hold (0: as fast as the socket takes them).
            batch: frames asked of ``batches`` at a time.
        """
        send = self.sock.send
        frames = nbytes = retries = 0
        t0 = time.perf_counter()
        while True:
            arr = batches(batch)
            if arr is None or len(arr) == 0:
                break
            for row in arr:
                while True:
                    try:
                        nbytes += send(row)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                            raise
                        retries += 1
                        time.sleep(0.0002)
                frames += 1
                if rate:
                    ahead = t0 + frames / rate - time.perf_counter()
                    if ahead > 0.0005:
                        time.sleep(ahead)
        if rate and frames:  # the last frame's time slot ends at t0 + frames / rate
            sleep_until(t0 + frames / rate)
        return SendResult(frames, nbytes, time.perf_counter() - t0, retries)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Injector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


