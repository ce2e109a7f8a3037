#!/usr/bin/env bash
# Prepare a Debian 12 host for pfrps, idempotently. Run as root from the repository.
#
# What it may change on the system, each printed as "changed: ..." when it happens:
#   1. Debian packages: python3-bpfcc python3-venv iproute2 bpftool netsniff-ng ppp pppoe,
#      and for the XDP labs, tests and benches: iputils-ping iputils-arping tcpdump ethtool
#      nftables haproxy apache2-utils (ab), prometheus (the metrics test scrapes pfrps with a real
#      Prometheus server), and for ./run qemu: qemu-system-x86 mmdebstrap e2fsprogs
#      (apt-get update runs only when one of them is missing). When it installs haproxy or
#      prometheus it disables and stops their system service, which Debian enables on install
#      (the benches run HAProxy themselves, the tests run Prometheus in a namespace).
#      freeradius and freeradius-utils (radclient) for the RADIUS tests: freeradius.service is
#      disabled and stopped the same way (the tests run FreeRADIUS in a namespace).
#   2. Kernel headers for bcc. Exact headers (linux-headers-$(uname -r)) when Debian has them;
#      otherwise Debian's generic headers (linux-headers-<arch>) plus a shim: two symlinks
#        /lib/modules/$(uname -r)/build  -> /usr/src/linux-headers-<ver>-<arch>
#        /lib/modules/$(uname -r)/source -> /usr/src/linux-headers-<ver>-common
#      and a marker file /lib/modules/$(uname -r)/.pfrps-header-shim naming them.
#      `tools/setup-host.sh --remove-shim` takes the shim away again.
#      A shim is only created where /lib/modules/$(uname -r)/build is absent, never over
#      headers that are already there.
#   3. A virtual environment in ./.venv (Debian's /usr/bin/python3), with Debian's bcc module
#      linked into it (bcc is not on PyPI) and the project installed editable with its PyPI
#      dependencies. Nothing outside the repository changes for this step.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
say() { printf 'setup: %s\n' "$*"; }
changed() { printf 'setup: changed: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 2; }

release=$(uname -r)
moddir=/lib/modules/$release
marker=$moddir/.pfrps-header-shim

if [ "${1:-}" = "--remove-shim" ]; then
  if [ -f "$marker" ]; then
    rm -f "$moddir/build" "$moddir/source" "$marker"
    rmdir "$moddir" 2>/dev/null || true
    changed "removed the header shim in $moddir"
  else
    say "no pfrps header shim in $moddir"
  fi
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (pfrps loads BPF programs and opens PF_PACKET sockets); run it with sudo"
[ -r /etc/debian_version ] || die "this script supports Debian 12; install python3-bpfcc and kernel headers by hand elsewhere"
export DEBIAN_FRONTEND=noninteractive

# --- 1. Debian packages --------------------------------------------------------------------
want=(python3-bpfcc python3-venv iproute2 bpftool netsniff-ng ppp pppoe
      iputils-ping iputils-arping tcpdump ethtool nftables haproxy apache2-utils prometheus
      freeradius freeradius-utils qemu-system-x86 mmdebstrap e2fsprogs)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
updated=0
apt_update() { [ $updated = 1 ] || { apt-get update -qq; updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  changed "installed Debian packages: ${missing[*]}"
  # HAProxy is a benchmark reference run in the foreground in a namespace; Debian's package
  # enables its system service, which pfrps does not want running on the host
  if [[ " ${missing[*]} " == *" haproxy "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now haproxy.service >/dev/null 2>&1 && changed "disabled and stopped haproxy.service (Debian enables it on install)"
  fi
  # Prometheus likewise: the metrics test starts its own server in a namespace, with its own
  # configuration and storage; nothing may keep scraping (or listening on :9090) on the host
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus.service >/dev/null 2>&1 && changed "disabled and stopped prometheus.service (Debian enables it on install)"
    elif [ -x /etc/init.d/prometheus ]; then  # no systemd: the package's SysV script
      if /etc/init.d/prometheus status >/dev/null 2>&1; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 && changed "stopped the prometheus service (Debian starts it on install)"
      fi
      update-rc.d prometheus disable >/dev/null 2>&1 && changed "disabled the prometheus service's start at boot (update-rc.d)"
    fi
  fi
  # FreeRADIUS likewise: the RADIUS tests start their own server in a namespace with a generated
  # configuration; Debian's freeradius.service would answer on :1812/:1813 of the host
  if [[ " ${missing[*]} " == *" freeradius "* ]]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now freeradius.service >/dev/null 2>&1 && changed "disabled and stopped freeradius.service (Debian enables it on install)"
    elif [ -x /etc/init.d/freeradius ]; then  # no systemd: the package's SysV script
      if /etc/init.d/freeradius status >/dev/null 2>&1; then
        /etc/init.d/freeradius stop >/dev/null 2>&1 && changed "stopped the freeradius service (Debian starts it on install)"
      fi
      update-rc.d freeradius disable >/dev/null 2>&1 && changed "disabled the freeradius service's start at boot (update-rc.d)"
    fi
  fi
fi

# --- 2. Kernel headers for bcc ---------------------------------------------------------------
have_headers() { [ -e "$moddir/build/include" ] || [ -e "$moddir/source/include" ]; }
if have_headers; then
  if [ -f "$marker" ]; then say "kernel headers: pfrps shim in $moddir ($(head -1 "$marker"))"
  else say "kernel headers: present for $release"; fi
else
  exact="linux-headers-$release"
  apt_update
  if apt-cache show "$exact" >/dev/null 2>&1; then
    apt-get install -y -qq "$exact" >/dev/null
    changed "installed $exact (exact headers for the running kernel)"
  else
    arch=$(dpkg --print-architecture)
    meta="linux-headers-$arch"
    if ! dpkg-query -W -f='${Status}' "$meta" 2>/dev/null | grep -q 'install ok installed'; then
      apt-get install -y -qq "$meta" >/dev/null
      changed "installed $meta (generic headers; Debian has no $exact)"
    fi
    build=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -1)
    common=${build%-"$arch"}-common
    [ -d "$build" ] && [ -d "$common" ] || die "generic headers not found under /usr/src after installing $meta"
    if [ -e "$moddir/build" ] && [ ! -f "$marker" ]; then
      die "$moddir/build exists but has no include/; fix or remove it, then run this again"
    fi
    mkdir -p "$moddir"
    ln -sfn "$build" "$moddir/build"
    ln -sfn "$common" "$moddir/source"
    printf '%s\n%s\n' "$(basename "$build") for running kernel $release" \
      "created by pfrps tools/setup-host.sh; remove with tools/setup-host.sh --remove-shim" > "$marker"
    changed "header shim: $moddir/build -> $build"
    changed "header shim: $moddir/source -> $common"
    say "bcc compiles socket-filter, XDP and TC programs against these; their kernel version differs from $release (BPF_PROG_TYPE_KPROBE users would need exact headers)"
  fi
fi

# --- 3. Virtual environment ------------------------------------------------------------------
venv=$REPO/.venv
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
  changed "created the virtual environment $venv"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e "$site/bcc" ]; then
  ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
  changed "linked Debian's bcc module into $site"
fi
stamp=$venv/.pfrps-installed
want_stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ]; then
  piplog=$venv/pip-install.log
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$venv/bin/python" -m pip install --disable-pip-version-check -e ".[test,bench]"; } >"$piplog" 2>&1; then
    tail -20 "$piplog" >&2
    die "pip could not install pfrps's dependencies (full log: $piplog); check that PyPI is reachable and run this again"
  fi
  echo "$want_stamp" > "$stamp"
  changed "installed pfrps (editable) and its PyPI dependencies into $venv"
fi
"$venv/bin/python" -c 'import bcc, pyroute2, numpy, uvloop, scapy, prometheus_client, pyrad, pytest' \
  || die "the virtual environment $venv cannot import bcc, pyroute2, numpy, uvloop, scapy, prometheus_client, pyrad and pytest together; remove it and run this again"
say "ready: $venv (bcc $("$venv/bin/python" -c 'import bcc.version as v; print(v.__version__)'))"
