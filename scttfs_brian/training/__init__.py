"""training: see docs/architecture.md."""

from .core import (  # noqa: F401
    FINE_TUNE_LR,
    KERNEL_LR_FACTOR,
    KERNEL_MIN,
    PAPER_FINE_TUNE_LR,
    evaluate,
    export,
    fine_tune,
    init_codes,
    spiking_twin,
    train_ann,
    trainable_parameters,
    twin_spike_times,
)
