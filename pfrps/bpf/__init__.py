"""BPF C sources of pfrps, installed as package data (``importlib.resources.files("pfrps.bpf")``)."""
