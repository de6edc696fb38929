# A/B boot with Mender's variable contract, persisted in two redundant
# env copies (uboot.env, uboot-redund.env) on the FAT boot partition,
# because saveenv to QEMU's pflash does not work. Each copy is in U-Boot's
# redundant layout: CRC32 (LE) | flags byte | NUL-separated key=value data.
# The copy with a valid CRC and the newer flags byte wins; a save writes
# the other copy with flags+1, so a torn write never destroys the last good
# env. Linux's fw_setenv (libubootenv) reads and writes the same files.
#
# Persistent defaults when no copy is valid: slot A, no update pending.
setenv ab_sz @ENV_SIZE@
setexpr ab_dsz ${ab_sz} - 5
setenv mender_boot_part 2
setenv mender_boot_part_hex 2
setenv upgrade_available 0
setenv bootcount 0
setenv bootlimit 1
setenv ab_persist "mender_boot_part mender_boot_part_hex upgrade_available bootcount bootlimit"

# Load and verify both copies: ab_ok_X=1 and ab_fl_X=<flags> when valid.
for c in a b; do
  setenv ab_ok_${c} 0
  if test ${c} = a; then setenv ab_file uboot.env; setenv ab_at ${ab_env_a}; else setenv ab_file uboot-redund.env; setenv ab_at ${ab_env_b}; fi
  if load virtio 0:1 ${ab_at} ${ab_file} && itest ${filesize} == ${ab_sz}; then
    setexpr ab_data ${ab_at} + 5
    # crc32 stores its result big-endian; the env holds it little-endian.
    crc32 ${ab_data} ${ab_dsz} ${ab_crcbuf}
    setenv ab_crcok 1
    for i in 0 1 2 3; do
      setexpr ab_p ${ab_at} + ${i}; setexpr ab_q ${ab_crcbuf} + 3; setexpr ab_q ${ab_q} - ${i}
      if itest.b *${ab_p} != *${ab_q}; then setenv ab_crcok 0; fi
    done
    setexpr ab_flat ${ab_at} + 4
    setexpr.b ab_fl_${c} *${ab_flat}
    if itest ${ab_crcok} == 1; then setenv ab_ok_${c} 1; else echo "ab-boot: env copy ${ab_file} has a bad CRC, ignored"; fi
  else
    echo "ab-boot: env copy ${ab_file} missing or wrong size, ignored"
  fi
done

# Pick the newer valid copy (flags 0 follows 255); the save goes to the other one.
setenv ab_use none
if itest ${ab_ok_a} == 1 && itest ${ab_ok_b} == 1; then
  setenv ab_use a
  if itest 0x${ab_fl_a} == 0xff && itest 0x${ab_fl_b} == 0; then setenv ab_use b;
  elif itest 0x${ab_fl_a} == 0 && itest 0x${ab_fl_b} == 0xff; then setenv ab_use a;
  elif itest 0x${ab_fl_b} > 0x${ab_fl_a}; then setenv ab_use b; fi
elif itest ${ab_ok_a} == 1; then setenv ab_use a;
elif itest ${ab_ok_b} == 1; then setenv ab_use b; fi

if test ${ab_use} = a; then
  setexpr ab_data ${ab_env_a} + 5; env import -b ${ab_data} ${ab_dsz}
  setexpr ab_flag ${ab_fl_a} + 1; setenv ab_save_file uboot-redund.env
elif test ${ab_use} = b; then
  setexpr ab_data ${ab_env_b} + 5; env import -b ${ab_data} ${ab_dsz}
  setexpr ab_flag ${ab_fl_b} + 1; setenv ab_save_file uboot.env
else
  echo "ab-boot: WARNING no valid env copy, using defaults (slot A)"
  setenv ab_flag 1; setenv ab_save_file uboot.env
fi
setexpr ab_flag ${ab_flag} % 0x100

# Mender's bootcount contract: count every boot of a pending update and
# fall back to the other slot once the count passes bootlimit.
setenv ab_dirty 0
if test "${upgrade_available}" = 1; then
  setexpr bootcount ${bootcount} + 1
  setenv ab_dirty 1
  if itest ${bootcount} > ${bootlimit}; then
    echo "ab-boot: bootcount ${bootcount} > bootlimit ${bootlimit}, rolling back"
    if test "${mender_boot_part}" = 2; then setenv mender_boot_part 3; setenv mender_boot_part_hex 3;
    else setenv mender_boot_part 2; setenv mender_boot_part_hex 2; fi
    setenv upgrade_available 0
    setenv bootcount 0
  fi
fi
if test ${ab_use} = none; then setenv ab_dirty 1; fi

if itest ${ab_dirty} == 1; then
  mw.b ${ab_env_out} 0 ${ab_sz}
  setexpr ab_data ${ab_env_out} + 5
  env export -b -s ${ab_dsz} ${ab_data} ${ab_persist}
  crc32 ${ab_data} ${ab_dsz} ${ab_crcbuf}
  for i in 0 1 2 3; do
    setexpr ab_p ${ab_env_out} + ${i}; setexpr ab_q ${ab_crcbuf} + 3; setexpr ab_q ${ab_q} - ${i}
    cp.b ${ab_q} ${ab_p} 1
  done
  setexpr ab_flat ${ab_env_out} + 4
  mw.b ${ab_flat} ${ab_flag}
  if fatwrite virtio 0:1 ${ab_env_out} ${ab_save_file} ${ab_sz}; then
    echo "ab-boot: env saved to ${ab_save_file} flags=${ab_flag}"
  else
    echo "ab-boot: ERROR saving env to ${ab_save_file}"
  fi
fi

if test "${mender_boot_part}" = 3; then setenv ab_slot B; else setenv ab_slot A; fi
echo "ab-boot: slot=${ab_slot} part=${mender_boot_part} bootcount=${bootcount} upgrade_available=${upgrade_available} bootlimit=${bootlimit} env=${ab_use}"
setenv bootargs "console=ttyAMA0 root=/dev/vda${mender_boot_part} ro rootfstype=ext4 rootwait ab.slot=${ab_slot} loglevel=4 panic=-1"
load virtio 0:1 ${kernel_addr_r} Image
load virtio 0:1 ${ramdisk_addr_r} initrd.gz
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
echo "ab-boot: FATAL booti returned"
