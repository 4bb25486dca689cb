"""torch: see docs/architecture.md."""

from .executor import (  # noqa: F401
    FunctionalOutput,
    GraphModule,
    SpikingActivation,
    run,
    simulate,
)
