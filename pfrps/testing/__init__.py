"""Helpers the test suite and the benchmarks share, for labs built on :mod:`pfrps.topology`.

Not the handler API (that is :mod:`pfrps`): these start the tools in a lab namespace and talk to
them the way a test or a benchmark does. Neither ``tests/`` nor ``bench/`` imports the other;
what both need lives here:

* :mod:`pfrps.testing.ac`: ``pfrps-ac`` (or another ``--ready-fd`` program) in a namespace with
  its ``--json`` snapshots and log collected (:class:`~pfrps.testing.ac.ACProcess`), a PPPoE
  host side on an AF_PACKET socket (:class:`~pfrps.testing.ac.PPPoEClient`) and frame helpers;
* :mod:`pfrps.testing.fuzz_frames`: the seeded PPPoE fuzz corpus, the kernel's view of a frame,
  a plain handler, and the paced socket flood the fuzz test and ``bench.fuzz`` run.
* :mod:`pfrps.testing.fault`: ring workers SIGKILLed at random under load, every frame
  checked (:func:`~pfrps.testing.fault.fault_run`), the run the fault test and ``bench.fault`` share;
* :mod:`pfrps.testing.procs`: the worker processes of a running supervisor.

Errors are :class:`pfrps.errors.LabError`.
"""
