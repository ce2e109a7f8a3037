"""The seed's two-node QEMU topology (``./run qemu``): image, guest command lines, runner, guest side.

* :mod:`pfrps.qemu.image`: the Debian guest image, built with mmdebstrap, cached by input hash.
* :mod:`pfrps.qemu.machine`: QEMU command lines for ``node`` and ``injector``, accelerator choice.
* :mod:`pfrps.qemu.cli`: the host-side runner (``main``).
* :mod:`pfrps.qemu.guest`: what runs inside each guest.
"""
