"""conversion: see docs/architecture.md."""

from .importer import (  # noqa: F401
    OUTPUT,
    ann_activations,
    code_from_activations,
    convert,
    load_state_dict,
)
