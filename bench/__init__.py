"""pfrps benchmark suite: ``python -m bench`` (``./run bench``); see bench/README.md."""
