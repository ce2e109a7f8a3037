"""pfrps.xdp: the seed documents' XDP and TC programs, their ``pfrps-xdp`` command and labs.

Seeds: ``001`` (case04, layer-3 forwarding three ways, ``xdp_stats``), ``000`` (case05,
broadcast at TC), ``002`` (an L4 load balancer), ``003`` (XDP on cloud hosts).
"""
