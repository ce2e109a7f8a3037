"""The guest image: Debian bookworm from Debian packages only, cached by a hash of its inputs.

``mmdebstrap`` (root mode) builds the root file system into a directory; its customize hook
copies in ``pfrps/qemu/files/image/`` (the systemd unit, the boot script, and a ``.pth`` line that
puts the checkout shared at ``/mnt/src`` on the guest venv's ``sys.path``) and
installs the guests' Python packages offline from a wheelhouse into ``/opt/pfrps-venv`` with
Debian's bcc linked in (as tools/setup-host.sh does on the host); ``mkfs.ext4 -d`` turns the
directory into a raw image (no loop mount). The kernel and initrd are copied out for direct
kernel boot. Everything goes to ``/var/cache/pfrps-qemu/image-<key>/``, where ``<key>`` hashes
the build inputs (:func:`cache_key`; a new build removes the images of older keys); a build happens in a ``.build-*`` directory renamed into
place only when complete, so the cache never holds a half-built image.

The wheelhouse (``wheels-<key>/``) is ``pip download`` of the host venv's ``pip freeze``
(minus the editable pfrps): the guests run the same pinned versions as the host.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import PfrpsError, UsageError

__all__ = ["GuestImage", "ImageBuildError", "CACHE_DIR", "IMAGE_PACKAGES", "SUITE", "MIRROR",
           "checkout_root", "files_dir", "script_path", "image_files", "pinned_requirements", "cache_key",
           "wheelhouse", "ensure_image", "mmdebstrap_argv", "GUEST_VENV"]

CACHE_DIR = Path("/var/cache/pfrps-qemu")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
GUEST_VENV = "/opt/pfrps-venv"
#: Debian packages of the guest image. The guest kernel (6.1) comes with its exact headers,
#: so bcc needs no shim in the guest. ``ppp`` (pppd with its PPPoE plugin pppoe.so, alias
#: rp-pppoe.so; the kernel's ppp_generic/pppox/pppoe modules load on demand) and
#: ``iputils-ping`` are the subscriber side of ``python -m pfrps.qemu.bng``.
IMAGE_PACKAGES = ("linux-image-amd64", "linux-headers-amd64", "initramfs-tools", "systemd-sysv",
                  "udev", "kmod", "python3-bpfcc", "python3-venv", "iproute2", "bpftool",
                  "ethtool", "procps", "ppp", "iputils-ping")
#: dpkg path excludes: documentation, manual pages and translations are never read in a guest.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
#: The initrd holds only what mounts the root file system (MODULES=list): 35 MB with Debian's
#: default MODULES=most took 11 s to unpack under TCG here.
INITRD_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")
BUILDER_VERSION = "2"


class ImageBuildError(PfrpsError):
    """The image or wheelhouse could not be built (exit status 1); the message has the log's tail."""


@dataclass(frozen=True)
class GuestImage:
    """A built image: ``root`` (raw ext4 file system), ``kernel`` and ``initrd`` for
    ``-kernel``/``-initrd``, and ``build_seconds`` (0.0 when it came from the cache)."""

    dir: Path
    root: Path
    kernel: Path
    initrd: Path
    build_seconds: float = 0.0


def files_dir() -> Path:
    """``pfrps/qemu/files/``: the guest scripts (``guest-run``, ``bng-run``) and ``image/``,
    package data found relative to this package (importlib.resources)."""
    return Path(str(importlib.resources.files(__package__) / "files"))


def checkout_root() -> Path:
    """The folder holding the ``pfrps`` package (a checkout, or site-packages): shared read-only
    into both guests as ``/mnt/src``, which the image's ``pfrps_checkout.pth`` puts on ``sys.path``."""
    return Path(str(importlib.resources.files("pfrps"))).parent


def script_path(name: str) -> str:
    """The path of guest script ``name`` (``files/<name>``) relative to :func:`checkout_root`,
    as ``pfrps.script=`` names it: ``"pfrps/qemu/files/guest-run"`` for ``"guest-run"``."""
    return "/".join([*__package__.split("."), "files", name])


def image_files(root: Optional[Path] = None) -> list[Path]:
    """The files of ``files/image/`` (``root`` or :func:`files_dir`) copied into the image, sorted."""
    d = (root or files_dir()) / "image"
    return sorted(p for p in d.iterdir() if p.is_file())


def pinned_requirements(python: str | os.PathLike) -> list[str]:
    """``pip freeze`` of the venv of ``python`` without editable installs and comments:
    ``["numpy==2.4.6", ...]``, sorted.

    Raises:
        UsageError: ``python`` cannot run pip (no venv yet: run tools/setup-host.sh).
    """
    try:
        out = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable",
                              "--disable-pip-version-check"],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot list the host venv's packages with {python} -m pip freeze ({exc})",
                         hint="run tools/setup-host.sh (./run setup) first") from None
    reqs = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-e ")) or " @ " in line or line.lower().startswith("pfrps=="):
            continue
        reqs.append(line)
    return sorted(reqs, key=str.lower)


def mmdebstrap_argv(target: Path, wheel_dir: Path, files_dir: Path,
                    packages: Sequence[str] = IMAGE_PACKAGES, suite: str = SUITE,
                    mirror: str = MIRROR) -> list[str]:
    """The ``mmdebstrap`` command line that builds the root file system into ``target``.

    The customize hook copies ``files_dir`` (``pfrps/qemu/files/image/``) into place, enables the guest
    unit and installs the wheelhouse offline (``pip --no-index``) into :data:`GUEST_VENV`.
    """
    venv = GUEST_VENV
    site = f"{venv}/lib/python3.11/site-packages"
    hook = " && ".join([
        'install -m 0644 "{f}/pfrps-guest.service" "$1/etc/systemd/system/pfrps-guest.service"',
        'install -m 0755 "{f}/pfrps-guest-boot" "$1/usr/local/sbin/pfrps-guest-boot"',
        'mkdir -p "$1/etc/systemd/system/serial-getty@ttyS0.service.d"',
        'install -m 0644 "{f}/autologin.conf" "$1/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"',
        'chroot "$1" systemctl enable pfrps-guest.service',
        'echo "pfrps-guest" > "$1/etc/hostname"',
        'printf "/dev/vda / ext4 rw,noatime 0 1\\n" > "$1/etc/fstab"',
        'mkdir -p "$1/tmp/wheels" && cp -a "{w}/." "$1/tmp/wheels/"',
        'chroot "$1" python3 -m venv {v}',
        'chroot "$1" {v}/bin/python -m pip install -q --no-index --no-cache-dir --disable-pip-version-check'
        ' --find-links /tmp/wheels -r /tmp/wheels/requirements.txt',
        'ln -s /usr/lib/python3/dist-packages/bcc "$1{s}/bcc"',
        'install -m 0644 "{f}/pfrps_checkout.pth" "$1{s}/"',
        'echo MODULES=list > "$1/etc/initramfs-tools/conf.d/pfrps.conf"',
        'printf "%s\\n" {m} >> "$1/etc/initramfs-tools/modules"',
        'chroot "$1" update-initramfs -u -k all',
        'rm -rf "$1/tmp/wheels" "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*',
    ]).format(f=files_dir, w=wheel_dir, v=venv, s=site, m=" ".join(INITRD_MODULES))
    return ["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
            "--include=" + ",".join(packages),
            *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
            "--customize-hook=" + hook, suite, str(target), mirror]


def cache_key(requirements: Sequence[str], files: Sequence[Path], packages: Sequence[str] = IMAGE_PACKAGES,
              suite: str = SUITE, mirror: str = MIRROR) -> str:
    """16 hex characters hashing every build input: suite, mirror, packages, dpkg excludes, the
    pinned Python requirements and the name and content of each file copied into the image.
    Any change gives a new key, hence a rebuild; the same inputs reuse the cached image."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": BUILDER_VERSION, "suite": suite, "mirror": mirror, "initrd": INITRD_MODULES,
                         "packages": sorted(packages), "excludes": DPKG_EXCLUDES,
                         "requirements": list(requirements)}, sort_keys=True).encode())
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _run_logged(argv: Sequence[str], log: Path, what: str, hint: str, timeout: float = 1800) -> None:
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(argv) + "\n").encode())
        f.flush()
        try:
            rc = subprocess.run(list(argv), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=timeout).returncode
        except FileNotFoundError:
            raise UsageError(f"{argv[0]} is not installed", code=2,
                             hint="run tools/setup-host.sh (./run setup), which installs it") from None
        except subprocess.TimeoutExpired:
            rc = -1
    if rc != 0:
        raise ImageBuildError(f"{what} failed (status {rc}); last lines of {log}:\n{_tail(log)}", hint=hint)


def wheelhouse(python: str | os.PathLike, requirements: Sequence[str], cache: Path = CACHE_DIR,
               say: Callable[[str], None] = print) -> Path:
    """``cache/wheels-<hash>/``: a wheel of each pinned requirement plus ``requirements.txt``,
    downloaded with the host venv's pip (``--only-binary :all: --no-deps``), reused when present.

    Raises:
        ImageBuildError: pip could not download them (log tail in the message).
    """
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    final = cache / f"wheels-{key}"
    if (final / "requirements.txt").is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".build-wheels-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "requirements.in").write_text("\n".join(requirements) + "\n")
        say(f"qemu: downloading {len(requirements)} pinned wheels (pip download) into {final}")
        _run_logged([str(python), "-m", "pip", "download", "-q", "--disable-pip-version-check",
                     "--only-binary", ":all:", "--no-deps", "-d", str(tmp), "-r", str(tmp / "requirements.in")],
                    cache / "wheels.log", "pip download of the guests' wheels",
                    "check that PyPI is reachable and run ./run qemu again")
        (tmp / "requirements.in").rename(tmp / "requirements.txt")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_image(python: str | os.PathLike, cache: Path = CACHE_DIR, say: Callable[[str], None] = print,
                 rebuild: bool = False) -> GuestImage:
    """The cached image for the current inputs, built first when absent (about 80-150 s).

    Raises:
        UsageError: mmdebstrap or mkfs.ext4 missing (set-up installs them).
        ImageBuildError: a build step failed; the partial build is removed, the log's tail shown.
    """
    reqs = pinned_requirements(python)
    files = image_files()
    key = cache_key(reqs, files)
    final = cache / f"image-{key}"
    if rebuild and final.exists():
        shutil.rmtree(final)
    if (final / "complete").is_file():
        return GuestImage(final, final / "root.img", final / "vmlinuz", final / "initrd.img")
    for tool in ("mmdebstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} is not installed", code=2,
                             hint="run tools/setup-host.sh (./run setup), which installs mmdebstrap, e2fsprogs and qemu-system-x86")
    wheels = wheelhouse(python, reqs, cache, say)
    t0 = time.monotonic()
    tmp = cache / f".build-image-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log = cache / f"image-{key}.log"
    log.unlink(missing_ok=True)
    try:
        rootdir = tmp / "rootfs"
        say(f"qemu: building the guest image {final.name} (mmdebstrap {SUITE}, log {log})")
        _run_logged(mmdebstrap_argv(rootdir, wheels, files[0].parent), log, "mmdebstrap",
                    "read the log; check that deb.debian.org is reachable and run ./run qemu again")
        boot = rootdir / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise ImageBuildError(f"no kernel or initrd in {boot} after mmdebstrap",
                                  hint="check linux-image-amd64 and initramfs-tools in the log " + str(log))
        shutil.copy2(kernels[-1], tmp / "vmlinuz")
        shutil.copy2(initrds[-1], tmp / "initrd.img")
        used = int(subprocess.run(["du", "-s", "--block-size=1M", str(rootdir)], capture_output=True,
                                  text=True, check=True).stdout.split()[0])
        size_mb = int(used * 1.25) + 256
        _run_logged(["mkfs.ext4", "-q", "-F", "-L", "pfrps-root", "-d", str(rootdir), str(tmp / "root.img"),
                     f"{size_mb}M"], log, "mkfs.ext4 -d", "read the log and run ./run qemu again")
        shutil.rmtree(rootdir)
        (tmp / "inputs.json").write_text(json.dumps({"key": key, "suite": SUITE, "mirror": MIRROR,
                                                     "packages": IMAGE_PACKAGES, "requirements": reqs,
                                                     "kernel": kernels[-1].name}, indent=1) + "\n")
        seconds = time.monotonic() - t0
        (tmp / "complete").write_text(f"{seconds:.1f}\n")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in cache.glob("image-*"):  # images of older inputs: 2 GB each, never used again
        if old != final and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            (cache / f"{old.name}.log").unlink(missing_ok=True)
    say(f"qemu: image built in {seconds:.0f} s ({size_mb} MiB raw ext4, kernel {kernels[-1].name[8:]})")
    return GuestImage(final, final / "root.img", final / "vmlinuz", final / "initrd.img", seconds)
