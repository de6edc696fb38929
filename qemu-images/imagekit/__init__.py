"""Building blocks for reference-image recipes: Debian packages in, image files out.

Everything here runs unprivileged tools on plain files: no root mounts, no
loop devices, so a recipe builds the same on a laptop, in CI and in a
container.
"""
