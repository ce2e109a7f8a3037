"""Import pfrps and pfinject from the checkout shared read-only at /mnt/src (9p).

The guest's counterpart of the host's editable install: the package directories come from
the checkout's pyproject.toml ([tool.setuptools] packages and package-dir), so ``pfrps.bpf``
is ``/mnt/src/bpf`` and ``pfinject`` is ``/mnt/src/inject``, as on the host.
Loaded by pfrps_checkout.pth in the guest venv's site-packages.
"""

import importlib.abc
import importlib.util
import os
import sys
import tomllib

ROOT = "/mnt/src"


def _package_dirs(root=ROOT):
    try:
        with open(os.path.join(root, "pyproject.toml"), "rb") as f:
            tool = tomllib.load(f)["tool"]["setuptools"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {}
    dirs = dict(tool.get("package-dir", {}))
    out = {}
    for pkg in tool.get("packages", []):
        parent, _, leaf = pkg.rpartition(".")
        if pkg in dirs:
            out[pkg] = os.path.join(root, dirs[pkg])
        elif parent in dirs or parent in out:
            out[pkg] = os.path.join(out.get(parent) or os.path.join(root, dirs[parent]), leaf)
        else:
            out[pkg] = os.path.join(root, *pkg.split("."))
    return out


class CheckoutFinder(importlib.abc.MetaPathFinder):
    def __init__(self, dirs):
        self.dirs = dirs

    def find_spec(self, name, path=None, target=None):
        d = self.dirs.get(name)
        if d is None:
            return None
        return importlib.util.spec_from_file_location(name, os.path.join(d, "__init__.py"),
                                                      submodule_search_locations=[d])


def install():
    dirs = _package_dirs()
    if dirs:
        sys.meta_path.insert(0, CheckoutFinder(dirs))
