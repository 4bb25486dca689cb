"""training: the ANN, the spiking ANN of section 3.4, its conversion and fine-tuning.

- :mod:`.ann`: :func:`train_ann`, :func:`evaluate`, and the conversion metric :func:`agreement`
  (``LOSSLESS_AGREEMENT``);
- :mod:`.spiking`: :func:`init_codes` (kernels from activations), :func:`spiking_ann` (the
  "pre-conversion SNN"), :func:`with_window`, :func:`spike_times`;
- :mod:`.bias_correction`: :func:`correct_biases`, :func:`bias_corrected` (conversion without
  fine-tuning, item 4 of issue 11);
- :mod:`.fine_tune`: :func:`fine_tune` (distillation or eq. 20, model selection on a validation
  split), :func:`fine_tune_windows` (a sweep of T, each window started from its neighbour);
- :mod:`.export`: :func:`export` (spiking ANN -> ANN + codes for :func:`~scttfs_brian.convert`).

See docs/architecture.md.
"""

from .ann import LOSSLESS_AGREEMENT, agreement, ann_outputs, evaluate, train_ann
from .bias_correction import bias_corrected, correct_biases
from .export import export
from .fine_tune import (
    FINE_TUNE_LR,
    KERNEL_LR_FACTOR,
    OBJECTIVES,
    PAPER_FINE_TUNE_LR,
    calibration_set,
    fine_tune,
    fine_tune_windows,
    validation_split,
    without_validation,
)
from .spiking import (
    KERNEL_MIN,
    init_codes,
    spike_times,
    spiking_ann,
    spiking_ann_from_state,
    trainable_parameters,
    with_window,
)

__all__ = [
    "train_ann",
    "evaluate",
    "ann_outputs",
    "agreement",
    "LOSSLESS_AGREEMENT",
    "init_codes",
    "spiking_ann",
    "with_window",
    "spiking_ann_from_state",
    "trainable_parameters",
    "spike_times",
    "KERNEL_MIN",
    "correct_biases",
    "bias_corrected",
    "fine_tune",
    "fine_tune_windows",
    "calibration_set",
    "validation_split",
    "without_validation",
    "OBJECTIVES",
    "PAPER_FINE_TUNE_LR",
    "FINE_TUNE_LR",
    "KERNEL_LR_FACTOR",
    "export",
]
