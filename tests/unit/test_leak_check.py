"""The closing leak check's namespace count (tests/conftest.py): only names in the session's
registry that still exist; a foreign namespace on the machine never counts."""

from __future__ import annotations

import tests.conftest as suite


def test_only_registered_namespaces_that_still_exist_count(tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    registry.write_text("ours-alive\nours-removed\n")
    monkeypatch.setattr(suite, "NETNS_REGISTRY", registry)
    monkeypatch.setattr(suite, "netns_names", lambda: {"ours-alive", "another-programs-netns"})
    assert suite.suite_netns() == {"ours-alive"}


def test_no_registry_means_nothing_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "NETNS_REGISTRY", tmp_path / "missing")
    monkeypatch.setattr(suite, "netns_names", lambda: {"another-programs-netns"})
    assert suite.suite_netns() == set()
