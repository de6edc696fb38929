"""The `ab-harness:` section of a target YAML, as documentation.

Placeholder: this module is replaced by the schema-generated reference (every
key, its type, default and meaning, generated from the validator). Until then
`key_reference()` returns a short page that says where the keys are described.
"""

from __future__ import annotations


def key_reference() -> str:
    """The `ab-harness:` key reference as a Markdown page (a level-1 heading first)."""
    return (
        "# The `ab-harness:` keys\n"
        "\n"
        "Every key of a target YAML's `ab-harness:` section, generated from the schema\n"
        "the harness validates each target file with. Until that reference is generated\n"
        "here, the keys are described in the user guide's pages on targets and on boards\n"
        "and labs, and `ab-harness target check NAME|PATH` names any key it rejects.\n"
    )
