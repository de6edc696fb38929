# A/B boot implementing Mender's U-Boot integration on a U-Boot without
# CONFIG_BOOTCOUNT_LIMIT (Debian's qemu_arm64 and qemu_arm). Each block below
# names the U-Boot or Mender code it stands in for; the README states the
# contract variable by variable.
#
# The env lives in two redundant copies (uboot.env, uboot-redund.env) on the
# FAT boot partition, because saveenv to QEMU's pflash does not work. Each
# copy is in U-Boot's redundant layout: CRC32 (LE) | flags | NUL-separated
# key=value data. The valid copy with the newer flags wins; every save writes
# the whole env (every variable, whoever set it) into the other copy with
# flags+1 (saveenv.scr), so a torn write never destroys the last good env.
# Linux's fw_setenv (libubootenv) reads and writes the same two files.
#
# Temporaries are hush locals (never saved) or env variables named ab_*,
# which saveenv.scr deletes before it exports the env.

# --- env_relocate() with CONFIG_SYS_REDUNDAND_ENVIRONMENT -----------------
# (@COPIES@ copies; the single-copy variant has no flags byte: header @HDR@)
setexpr ab_dsz @ENV_SIZE@ - @HDR@
ok_a=0
ok_b=0
for c in @COPY_IDS@; do
  ok=0
  if test ${c} = a; then file=uboot.env; at=@ENV_A@; else file=uboot-redund.env; at=@ENV_B@; fi
  if load virtio 0:1 ${at} ${file} && itest ${filesize} == @ENV_SIZE@; then
    setexpr ab_data ${at} + @HDR@
    # crc32 stores its result big-endian; the env holds it little-endian.
    crc32 ${ab_data} ${ab_dsz} @CRCBUF@
    crcok=1
    for i in 0 1 2 3; do
      setexpr ab_p ${at} + ${i}; setexpr ab_q @CRCBUF@ + 3; setexpr ab_q ${ab_q} - ${i}
      if itest.b *${ab_p} != *${ab_q}; then crcok=0; fi
    done
    setexpr ab_flat ${at} + 4
    if itest @COPIES@ == 2; then setexpr.b ab_fl_${c} *${ab_flat}; else setenv ab_fl_${c} 0; fi
    if itest ${crcok} == 1; then ok=1; else echo "ab-boot: env copy ${file} has a bad CRC, ignored"; fi
  else
    echo "ab-boot: env copy ${file} missing or wrong size, ignored"
  fi
  if test ${c} = a; then ok_a=${ok}; else ok_b=${ok}; fi
done

# The newer valid copy wins (flags 0 follows 255); saves go to the other one.
use=none
if itest ${ok_a} == 1 && itest ${ok_b} == 1; then
  use=a
  if itest 0x${ab_fl_a} == 0xff && itest 0x${ab_fl_b} == 0; then use=b;
  elif itest 0x${ab_fl_a} == 0 && itest 0x${ab_fl_b} == 0xff; then use=a;
  elif itest 0x${ab_fl_b} > 0x${ab_fl_a}; then use=b; fi
elif itest ${ok_a} == 1; then use=a;
elif itest ${ok_b} == 1; then use=b; fi

# saveenv.scr keeps its state in memory: the flags byte of the next save and
# which copy it goes to (0 = uboot.env, 1 = uboot-redund.env).
if test ${use} = a; then
  setexpr ab_data @ENV_A@ + @HDR@; env import -b ${ab_data} ${ab_dsz}
  setexpr ab_flag ${ab_fl_a} + 1; mw.b @STATE_COPY@ 1
  if itest @COPIES@ == 1; then mw.b @STATE_COPY@ 0; fi
elif test ${use} = b; then
  setexpr ab_data @ENV_B@ + @HDR@; env import -b ${ab_data} ${ab_dsz}
  setexpr ab_flag ${ab_fl_b} + 1; mw.b @STATE_COPY@ 0
else
  # Both copies bad: U-Boot's default env, which is Mender's (slot A, nothing
  # pending); the first save goes to the first copy with flags 1.
  echo "ab-boot: WARNING no valid env copy, using the default env (slot A)"
  setenv bootlimit 1; setenv bootcount 0; setenv upgrade_available 0
  setenv mender_boot_part 2; setenv mender_boot_part_hex 2
  setenv ab_flag 1; mw.b @STATE_COPY@ 0
fi
setexpr ab_flag ${ab_flag} % 0x100
mw.b @STATE_FLAG@ ${ab_flag}
load virtio 0:1 @SAVE_SCR@ saveenv.scr

# --- bootcount_load/store (CONFIG_BOOTCOUNT_ENV) and bootdelay_process() --
# bootcount and bootlimit are decimal, as U-Boot reads them. setexpr only
# does hex, so the increment is done in BCD: a decimal string read as hex,
# plus one, with a decimal carry (0..999).
if test "${upgrade_available}" = 1; then
  if test -z "${bootcount}"; then setenv bootcount 0; fi
  setexpr ab_bc ${bootcount} + 1
  setexpr ab_lo ${ab_bc} "&" 0xf; if itest 0x${ab_lo} == 0xa; then setexpr ab_bc ${ab_bc} + 6; fi
  setexpr ab_lo ${ab_bc} "&" 0xf0; if itest 0x${ab_lo} == 0xa0; then setexpr ab_bc ${ab_bc} + 0x60; fi
  setexpr ab_lo ${ab_bc} "&" 0xf00; if itest 0x${ab_lo} == 0xa00; then setexpr ab_bc ${ab_bc} + 0x600; fi
  setenv bootcount ${ab_bc}
  why=bootcount; source @SAVE_SCR@
else
  # bootcount_load() reads 0 when nothing is pending; the incremented value
  # lives in RAM only, and is written only if some later save happens.
  setenv bootcount 1
fi
limit=${bootlimit}
if test -z "${limit}"; then limit=0; fi
# Decimal strings compare correctly as hex; bootlimit=0 means "no limit".
if itest ${limit} != 0 && itest ${bootcount} > ${limit}; then
  echo "Warning: Bootlimit (${limit}) exceeded. Using altbootcmd."
  # --- mender_altbootcmd: switch slot, clear upgrade_available, saveenv --
  if test "${mender_boot_part}" = 2; then setenv mender_boot_part 3; setenv mender_boot_part_hex 3;
  else setenv mender_boot_part 2; setenv mender_boot_part_hex 2; fi
  setenv upgrade_available 0
  why=altbootcmd; source @SAVE_SCR@
fi

# --- mender_setup: the canary tells Linux that U-Boot's saves reach the env
if test "${mender_saveenv_canary}" != 1; then
  setenv mender_saveenv_canary 1
  why=canary; source @SAVE_SCR@
fi

if test "${mender_boot_part}" = 3; then slot=B; else slot=A; fi
echo "ab-boot: slot=${slot} part=${mender_boot_part} bootcount=${bootcount} upgrade_available=${upgrade_available} bootlimit=${bootlimit} env=${use}"

# --- bootcmd: kernel (and initrd, if any) from /boot of the chosen slot ----
# The last five options cut about a second from every boot under emulation
# (the crypto self-tests and KASLR are what TCG pays most for); none of them
# touches the A/B logic.
setenv bootargs "console=ttyAMA0 root=/dev/vda${mender_boot_part} ro rootfstype=ext4 rootwait ab.slot=${slot} loglevel=4 panic=-1 quiet nokaslr audit=0 mitigations=off cryptomgr.notests"
fdt=${fdtcontroladdr}
# The kernel (@KERNEL@, started with @BOOT_CMD@) is read as it is: an arm64
# Image uncompressed (read in a few ms; unpacking takes half a second under
# emulation), an arm zImage unpacking itself. A release may ship it gzip'ed
# instead (@KERNEL@.gz), where this U-Boot has `unzip` (qemu_arm's has not).
ab_kernel=0
if load virtio 0:${mender_boot_part_hex} ${kernel_addr_r} /boot/@KERNEL@; then
  ab_kernel=1
elif load virtio 0:${mender_boot_part_hex} @ZIP_ADDR@ /boot/@KERNEL@.gz && unzip @ZIP_ADDR@ ${kernel_addr_r} @KERNEL_MAX@; then
  ab_kernel=1
fi
# The initramfs is optional: a kernel with its drivers built in (arm64's)
# mounts the slot itself; a Debian kernel needs its modules from initrd.gz.
if test ${ab_kernel} = 1; then
  if test -e virtio 0:${mender_boot_part_hex} /boot/initrd.gz; then
    if load virtio 0:${mender_boot_part_hex} ${ramdisk_addr_r} /boot/initrd.gz; then
      @BOOT_CMD@ ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt}
    fi
  else
    @BOOT_CMD@ ${kernel_addr_r} - ${fdt}
  fi
fi
echo "ab-boot: kernel of slot ${slot} did not boot"

# --- mender_try_to_recover: a pending update resets, so the boot counts ----
if test "${upgrade_available}" = 1; then
  echo "ab-boot: update pending, resetting so this boot counts"
  reset
fi
echo "ab-boot: FATAL slot ${slot} has no bootable kernel and no update is pending"
