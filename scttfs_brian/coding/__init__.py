"""coding: the SC-TTFS and TTFS codes, the one definition of the spike rule (eqs. 9-17).

- :mod:`.kernels`: :class:`ThresholdKernel` (eq. 14), the Table 1 :data:`PRESETS`, the window;
- :mod:`.rule`: the stepwise rule (eqs. 9-13) on numpy arrays and plain torch tensors, and
  eq. 15's closed form;
- :mod:`.boundaries`: the rule of one code as intervals of potentials (derived, pure numpy);
- :mod:`.codes`: the codes (decode, quantize, codebook, to_dict / :func:`code_from_dict`).

No engine fast paths, compiled functions or caches live here: the torch engine's are in
:mod:`scttfs_brian.torch.lookup`. See docs/architecture.md.
"""

from .boundaries import Boundaries, float_neighbours, spike_boundaries
from .codes import CODE_KINDS, Code, CodeBase, CodeWord, SCTTFSCode, TTFSCode, code_from_dict
from .kernels import MAX_CODEWORDS, PRESETS, ThresholdKernel, check_codebook_size, check_window
from .rule import NO_SPIKE, as_potentials, closed_form_time, stepwise_spike_times, stepwise_torch, torch_table

__all__ = [
    "ThresholdKernel",
    "PRESETS",
    "check_window",
    "check_codebook_size",
    "MAX_CODEWORDS",
    "NO_SPIKE",
    "as_potentials",
    "torch_table",
    "stepwise_torch",
    "stepwise_spike_times",
    "closed_form_time",
    "Boundaries",
    "spike_boundaries",
    "float_neighbours",
    "CodeBase",
    "SCTTFSCode",
    "TTFSCode",
    "Code",
    "CodeWord",
    "CODE_KINDS",
    "code_from_dict",
]
