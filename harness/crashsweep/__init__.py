"""Crash states from a write log: record an update with every write logged,
rebuild the disk as a power cut at any write left it (a lost cache too),
boot each state and judge it against the invariant."""
