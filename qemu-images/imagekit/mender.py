"""The real Mender client (Debian's mender-client 3.4) in a reference rootfs.

An image *flavour*: the recipes build it only when asked (`--client mender`),
into an image of its own (`<recipe>-mender`), so the shell-agent images stay
as small and fast as they are. What a Mender device needs and this adds:
- `/usr/bin/mender` and its shared libraries (glib/gio and what they pull in,
  OpenSSL, liblzma), taken from Debian's packages of the image's architecture;
- `/etc/mender/mender.conf`: RootfsPartA/B are the slot devices (the client
  finds the running slot from the mounted root and writes the other one);
- `/etc/mender/artifact_info` (the release's artifact name, read while the
  client's database has none);
- `/var/lib/mender` -> `/data/mender` (the rootfs is read-only; the client's
  database and the device type live on the data partition);
- `/etc/ab-update.conf` telling the boot-time health runner to commit with
  `mender commit` (a Mender device's integration decides when to commit;
  the client itself only offers the command).
The bootloader env tools the client calls (fw_printenv/fw_setenv) are the
image's own: libubootenv on U-Boot, the grubenv scripts on GRUB.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from imagekit.debs import AptRoot, extract

# mender-client and the closure of its NEEDED libraries (readelf -d, then
# theirs): gio -> gobject, gmodule, ffi, mount, blkid, selinux, pcre2, z;
# on armhf libgcc_s too (the client would not start there without it).
PACKAGES = (
    "mender-client",
    "libglib2.0-0",
    "libssl3",
    "liblzma5",
    "libmount1",
    "libblkid1",
    "libselinux1",
    "libpcre2-8-0",
    "libffi8",
    "zlib1g",
    "libgcc-s1",
    "libc6",
)
# The single-file update module, for module-image artifacts.
MODULES = ("single-file",)
COMMIT_CONF = 'COMMIT="mender --no-syslog commit"\n'
# A USB key the device notices itself: busybox init starts this watcher once
# sysinit is done. While /data/ab-usb-autoinstall exists it polls for new USB
# disks (sd* under a USB device), mounts each read-only, installs its
# update.mender with the client and says what came of it on the console and
# in /run/ab-usb.log; each key once. Off by default, so a harness-driven
# install from the same key never races it.
USB_WATCHER = """#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
seen=" "
say() { echo "ab-usb: $*" > /dev/console; echo "$*" >> /run/ab-usb.log; }
while :; do
  if [ ! -f /data/ab-usb-autoinstall ]; then sleep 2; continue; fi
  for d in /sys/block/sd*; do
    [ -e "$d" ] || continue
    n=${d##*/}
    case "$seen" in *" $n "*) continue ;; esac
    case "$(readlink -f "$d/device")" in */usb*) ;; *) continue ;; esac
    seen="$seen$n "
    m=/run/ab-usb/$n
    mkdir -p "$m"
    if ! mount -t vfat -o ro "/dev/$n" "$m" 2>/dev/null; then say "$n: not a FAT key"; continue; fi
    if [ -f "$m/update.mender" ]; then
      say "$n: installing update.mender"
      mender --no-syslog install "$m/update.mender" > "/run/ab-usb-$n.out" 2>&1
      rc=$?
      if [ $rc = 0 ]; then say "$n: installed"; else say "$n: refused (exit $rc)"; fi
    else
      say "$n: no update.mender"
    fi
    umount "$m"
  done
  usleep 300000
done
"""


def fetch(apt: AptRoot, pool: Path, staging: Path) -> dict[str, str]:
    """Download and unpack the client's packages into `staging` (apart from
    the image's others, so only the client's libraries are taken from it)."""
    debs = apt.download(list(PACKAGES), pool)
    for deb in debs.values():
        extract(deb, staging)
    return {name: deb.name for name, deb in sorted(debs.items())}


def _copy_libs(staging: Path, tree: Path, multiarch: str) -> None:
    """Every shared object (and its soname link) the packages ship in the
    multiarch folders; folders of plugins and helpers are left out."""
    for sub in (f"lib/{multiarch}", f"usr/lib/{multiarch}"):
        src = staging / sub
        if not src.is_dir():
            continue
        dst = tree / sub
        dst.mkdir(parents=True, exist_ok=True)
        for item in sorted(src.iterdir()):
            if ".so" not in item.name or item.is_dir():
                continue
            target = dst / item.name
            if target.exists() or target.is_symlink():
                continue
            if item.is_symlink():
                target.symlink_to(item.readlink())
            else:
                shutil.copy2(item, target)


def mender_conf(slot_devices: dict[str, str], verify_key: str | None = None) -> str:
    conf: dict[str, object] = {
        "RootfsPartA": slot_devices["A"],
        "RootfsPartB": slot_devices["B"],
        # Standalone mode only: no server, no polling.
        "ServerURL": "",
    }
    if verify_key is not None:
        conf["ArtifactVerifyKey"] = verify_key
    return json.dumps(conf, indent=2, sort_keys=True) + "\n"


def install(
    staging: Path,
    tree: Path,
    multiarch: str,
    slot_devices: dict[str, str],
    artifact_name: str,
) -> None:
    """Put the client into a rootfs tree (see the module's docstring)."""
    (tree / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(staging / "usr" / "bin" / "mender", tree / "usr" / "bin" / "mender")
    _copy_libs(staging, tree, multiarch)
    modules = tree / "usr" / "share" / "mender" / "modules" / "v3"
    modules.mkdir(parents=True, exist_ok=True)
    for module in MODULES:
        shutil.copy2(staging / "usr/share/mender/modules/v3" / module, modules / module)
    etc = tree / "etc" / "mender"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "mender.conf").write_text(mender_conf(slot_devices))
    (etc / "artifact_info").write_text(f"artifact_name={artifact_name}\n")
    (etc / "scripts").mkdir(exist_ok=True)
    (etc / "scripts" / "version").write_text("3\n")
    var_lib = tree / "var" / "lib"
    var_lib.mkdir(parents=True, exist_ok=True)
    (var_lib / "mender").symlink_to("/data/mender")
    (tree / "etc" / "ab-update.conf").write_text(COMMIT_CONF)
    watcher = tree / "usr" / "sbin" / "ab-usb-watch"
    watcher.parent.mkdir(parents=True, exist_ok=True)
    watcher.write_text(USB_WATCHER)
    watcher.chmod(0o755)
    inittab = tree / "etc" / "inittab"
    inittab.write_text(inittab.read_text() + "::once:/usr/sbin/ab-usb-watch\n")


def data_files(data_tree: Path, device_type: str) -> None:
    """The client's state folder on the data partition, with the device type."""
    folder = data_tree / "mender"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "device_type").write_text(f"device_type={device_type}\n")


def artifact_name(release: str) -> str:
    """The artifact name of a release (v1, v2, v2-bad...): the same in the
    rootfs's artifact_info and in the artifact the harness builds from it."""
    return f"ab-harness-{release}"
