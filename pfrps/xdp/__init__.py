"""pfrps.xdp: XDP and TC programs -- a router, a broadcast switch, an L4 load balancer, a cloud
host's L2 forwarding -- their ``pfrps-xdp`` command and labs (``pfrps-xdp lab router|switch|lb|cloud``).

From the seed documents ``001`` (case04: layer-3 forwarding three ways, ``xdp_stats``), ``000``
(case05: broadcast at TC), ``002`` (the load balancer), ``003`` (XDP on cloud hosts); the case
names remain as lab aliases.

The framework every subcommand builds on:

* :mod:`.attach` -- ``resolve_ifindex(name)``; ``Attachments`` (context manager, ``close()``
  idempotent, undoes in reverse order): ``.xdp(ifname, prog_fd, generic)`` (a BPF link,
  ``BPF_LINK_CREATE``/``BPF_XDP`` in SKB or DRV mode, detached by the kernel when its holder
  dies; on kernels without XDP links pyroute2 ``IFLA_XDP``, ``XDP_FLAGS_UPDATE_IF_NOEXIST``,
  detached with the same mode flag; a busy interface raises ``XdpBusyError`` naming the
  program), ``.tc(ifname, prog_fd, direction, name)`` (a tcx link, 6.6+; else clsact +
  direct-action cls_bpf, the qdisc removed only if created here), ``.link_fds()``, ``.pin(fd, path)``, ``.pin_dir(path)``, ``.callback(fn)``,
  ``.program(source, cflags)`` (bcc compile of ``bpf/<source>``), ``.load(mod, func, type)``.
* :mod:`.counters` -- ``xdp_stats_map`` (``bpf/xdp_stats.h``: PERCPU_ARRAY of ``struct
  datarec``) read with numpy (``percpu_reader``), ``CounterTable`` snapshots, ``Rates``
  between two, the seed's lines (``format_lines``) and JSON (``rates_json``), ``sampler``.
* :mod:`.runner` -- ``run_foreground(att, sample, interval=, duration=, json=)``: startup
  line, samples until SIGINT/SIGTERM/``--duration``, always closes ``att``; ``StopSignals``
  (installed by the CLI before anything is attached); ``run_xdp(args, source, func, ifnames,
  setup=...)``: compile, load, fill maps, attach, run; ``add_common(parser)``:
  ``--generic --duration --interval --json --log-level``.
* :mod:`.cli` -- ``main(argv)``; ``SUBCOMMANDS``: modules exposing ``register(subparsers)``
  whose parsers ``set_defaults(func=f)``, ``f(args) -> int``; ``LABS``: the one list of labs
  (name, aliases, ``module:Class``).
* :mod:`.lab` -- ``Lab`` base (``add_ns``, ``veth``, ``addr``, ``route``, ``neigh``,
  ``sysctl``, ``run``/``popen``/``start_xdp``, ``call`` in a forked child inside a namespace,
  ``check``, ``destroy``), ``register(subparsers, labs)`` for ``pfrps-xdp lab NAME``.

Known traps (measured on this kernel): call ``tx_port.redirect_map(key, flags)`` on a
``BPF_DEVMAP`` (bcc does not rewrite ``&map``, and never rewrites map calls in headers or
macros); a DEVMAP entry's ifindex resolves in the namespace of the writing thread; native
``XDP_REDIRECT`` into a veth is dropped unless the peer has an XDP program (``pfrps-xdp
pass``); detaching without the attach's mode flag leaves a generic program attached.
"""
