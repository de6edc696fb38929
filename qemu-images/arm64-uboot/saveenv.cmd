# saveenv for the FAT file env (U-Boot's own saveenv cannot write QEMU's
# pflash here). Sourced by boot.scr wherever Mender's integration calls
# saveenv. It writes the WHOLE env, as saveenv does, into the copy the
# previous save did not use, with the flags byte one higher.
#
# Both values live in memory (@STATE_FLAG@, @STATE_COPY@) so that no
# bookkeeping variable is ever saved. The first command deletes every ab_*
# temporary boot.scr and this script create, and U-Boot's load results.
env delete -f ab_dsz ab_data ab_p ab_q ab_flat ab_fl_a ab_fl_b ab_flag ab_bc ab_lo ab_next filesize fileaddr
mw.b @ENV_OUT@ 0 @ENV_SIZE@
env export -b -s @ENV_DATA_SIZE@ @ENV_OUT_DATA@
crc32 @ENV_OUT_DATA@ @ENV_DATA_SIZE@ @CRCBUF@
# crc32 stores its result big-endian; the env holds it little-endian.
for i in 0 1 2 3; do
  setexpr ab_p @ENV_OUT@ + ${i}; setexpr ab_q @CRCBUF@ + 3; setexpr ab_q ${ab_q} - ${i}
  cp.b ${ab_q} ${ab_p} 1
done
setexpr.b ab_flag *@STATE_FLAG@
if itest @COPIES@ == 2; then mw.b @ENV_OUT_FLAGS@ ${ab_flag}; fi
if itest.b *@STATE_COPY@ == 0; then file=uboot.env; else file=uboot-redund.env; fi
if fatwrite virtio 0:1 @ENV_OUT@ ${file} @ENV_SIZE@; then
  echo "ab-boot: saveenv (${why}) wrote ${file} flags=0x${ab_flag}"
  setexpr ab_next ${ab_flag} + 1; setexpr ab_next ${ab_next} % 0x100
  mw.b @STATE_FLAG@ ${ab_next}
  if itest @COPIES@ == 1; then echo "ab-boot: (one copy: the next save overwrites it)";
  elif itest.b *@STATE_COPY@ == 0; then mw.b @STATE_COPY@ 1; else mw.b @STATE_COPY@ 0; fi
else
  echo "ab-boot: ERROR saveenv (${why}) could not write ${file}"
fi
