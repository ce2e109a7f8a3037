"""ethtool(8) features of a link through pyroute2's Ethtool (``SIOCETHTOOL``), in the calling
thread's network namespace."""

from __future__ import annotations

__all__ = ["tx_checksum_off"]


def tx_checksum_off(ifname: str) -> list[str]:
    """Turn every ``tx-checksum-*`` feature of ``ifname`` (this namespace) off, as ``ethtool -K
    DEV tx off`` does (SIOCETHTOOL through pyroute2's Ethtool). Returns the features turned off.

    Why: a veth sender with TX checksum offload hands on CHECKSUM_PARTIAL packets whose TCP/UDP
    checksum holds only the pseudo-header sum; a native XDP program that rewrites and XDP_TX-es
    them loses that state, so the receiver would see (and drop) a wrong checksum.
    """
    from pyroute2.ethtool import Ethtool  # noqa: PLC0415

    eth = Ethtool()
    try:
        feats = eth.get_features(ifname)
        off = [name for name, f in feats.features.items() if name.startswith("tx-checksum") and f.enable]
        for name in off:
            feats.features[name].enable = False
        if off:
            eth.set_features(ifname, feats)
    finally:
        eth.close()
    return off
