#!/bin/sh
# Install what ab-harness needs on a fresh Debian 12 machine: the Debian
# packages (as root, or through sudo) and a .venv with the harness in it.
# Idempotent: a second run installs nothing and takes a second or two.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="qemu-system-arm qemu-system-x86 qemu-utils u-boot-qemu u-boot-tools libubootenv-tool
busybox-static e2fsprogs dosfstools mtools fdisk kmod cpio grub-common grub-efi-amd64-bin ovmf python3-venv ca-certificates
debian-archive-keyring openssl libcairo2 fonts-dejavu-core chromium mender-artifact zstd
gcc-aarch64-linux-gnu gcc libc6-dev make bc flex bison
dpkg-dev patch xxd libssl-dev
dropbear-bin openssh-client
rauc squashfs-tools swupdate"
# libcairo2 + fonts: the timeline PNG (cairosvg); chromium: the test that opens the HTML report.
# mender-artifact: writes the artifacts the reader is checked against; zstd: .tar.zst members;
# openssl: the signing keys of those tests.
# gcc-aarch64-linux-gnu ... bison: the arm64 reference kernel, built once from Debian's
# linux-source-6.1 (qemu-images/imagekit/kernel.py) and cached.
# dpkg-dev ... libssl-dev: the stock image's U-Boot, built once from Debian's u-boot source
# (qemu-images/imagekit/uboot.py): dpkg-source unpacks it, patch applies the recipe's patch,
# xxd compiles the default env in, libssl-dev for the host tools (mkimage) the build makes.
# dropbear-bin: dropbearkey makes the image's SSH host key; openssh-client: ssh/scp for
# labgrid's SSHDriver (delivery: ssh).
# rauc, swupdate: build and check the bundles `artifact inspect` is compared with (rauc bundle,
# rauc info, swupdate -c); squashfs-tools: unsquashfs reads a RAUC bundle's manifest and images.

missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: need root or sudo to install:$missing" >&2; exit 1; fi
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.ab-harness-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing ab-harness into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # setuptools explains editable installs at length on every install: not our news.
  PYTHONWARNINGS="ignore:::setuptools.command.editable_wheel" .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/ab-harness, .venv/bin/pytest)"
