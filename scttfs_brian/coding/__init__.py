"""coding: see docs/architecture.md."""

from .codes import (  # noqa: F401
    NO_SPIKE,
    PRESETS,
    CODE_KINDS,
    code_from_dict,
    Boundaries,
    Code,
    CodeBase,
    CodeWord,
    SCTTFSCode,
    ThresholdKernel,
    TTFSCode,
    as_potentials,
    closed_form_time,
    compiled_lookup,
    compiled_stepwise,
    spike_boundaries,
    stepwise_spike_times,
    torch_table,
)
