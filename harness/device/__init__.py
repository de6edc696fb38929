"""The device at run time: power on, follow every boot, its console and shell,
observe its env and running slot."""
