"""The machine under test when it is a QEMU: the labgrid driver made safe to
leave running (`qemu`), its accelerator choice (`accel`), its QMP channel
(`qmp`), its boot disk as a block graph (`blockgraph`), where payload disks are
hot-plugged (`hotplug`) and the console that is always read (`console_pump`).
A physical board has none of this: it is labgrid's own drivers (see
`harness.lab.rig` for the virtual one)."""
