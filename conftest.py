"""Repository-level pytest configuration.

The ab-harness plugin itself is registered through the `pytest11` entry
point (harness.plugin), so users get it by installing the package; this
file only holds what is specific to developing ab-harness in this repo.
"""

pytest_plugins = ["pytester"]
