"""Targets: the YAML description and its keys, its disk and files, and what is
checked before anything boots."""
