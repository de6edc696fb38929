"""``python -m harness.cli``: the same as the ``ab-harness`` command."""

from harness.cli import main

raise SystemExit(main())
