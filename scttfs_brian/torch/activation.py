r"""The trainable spiking activation of section 3.4: ``nn.ReLU`` replaced by a layer's code.

:class:`SpikingActivation` holds the layer's kernels as parameters (:class:`KernelParameters`).
Its forward pass is the stepwise rule of :mod:`scttfs_brian.coding` with the current kernels; its
backward pass differentiates ``theta(t)`` with respect to ``alpha, beta, k`` at the (piecewise
constant) spike times, eqs. 21-23, and passes the gradient straight through to ``v`` inside the
code's range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode, stepwise_spike_times

__all__ = ["SpikingActivation", "KernelParameters", "quantization_error"]


class KernelParameters(nn.Module):
    """Trainable ``alpha, beta, k`` of one threshold kernel (eq. 14)."""

    def __init__(self, kernel: ThresholdKernel):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(kernel.alpha, dtype=torch.float64))
        self.beta = nn.Parameter(torch.tensor(kernel.beta, dtype=torch.float64))
        self.k = nn.Parameter(torch.tensor(kernel.k, dtype=torch.float64))

    def table(self, T: int) -> torch.Tensor:
        t = torch.arange(T, dtype=self.alpha.dtype, device=self.alpha.device)
        return self.alpha * torch.exp(-self.k * t + self.beta)

    def export(self) -> ThresholdKernel:
        return ThresholdKernel(float(self.alpha.detach()), float(self.beta.detach()), float(self.k.detach()))


class SpikingActivation(nn.Module):
    r"""Drop-in replacement for ``nn.ReLU`` with a trainable SC-TTFS or TTFS code.

    Forward: the stepwise rule (eqs. 9-13) with the current kernels, returning
    ``z = theta_e(t_enc) + theta_c(t_cal)``. Backward:

    * to the kernels, eqs. 21-23: :math:`\partial\theta/\partial\alpha = e^{-kt+\beta}`,
      :math:`\partial\theta/\partial k = -t\,\theta(t)`, :math:`\partial\theta/\partial\beta =
      \theta(t)`, at the spike times (which are piecewise constant in the parameters);
    * to the potential ``v``: straight through (gradient 1) where ``0 < v <= max decodable
      value``, 0 elsewhere (silent or clipped neurons do not respond to small changes).

    Parameters
    ----------
    code : SCTTFSCode or TTFSCode
        Initial kernels and window length.
    """

    def __init__(self, code: SCTTFSCode | TTFSCode):
        super().__init__()
        self.T = code.T
        self.encode = KernelParameters(code.encode)
        self.calibrate = KernelParameters(code.calibrate) if code.calibrate is not None else None

    def tables(self):
        tab_e = self.encode.table(self.T)
        tab_c = self.calibrate.table(self.T) if self.calibrate is not None else None
        return tab_e, tab_c

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        tab_e, tab_c = self.tables()
        t_enc, t_cal = stepwise_spike_times(v, tab_e, tab_c)
        z = torch.where(
            t_enc >= 0, tab_e.to(v.dtype)[t_enc.clamp(min=0)], torch.zeros((), dtype=v.dtype, device=v.device)
        )
        top = tab_e[0]
        if tab_c is not None:
            z = z + torch.where(
                t_cal >= 0,
                tab_c.to(v.dtype)[t_cal.clamp(min=0)],
                torch.zeros((), dtype=v.dtype, device=v.device),
            )
            top = top + tab_c[0]
        inside = (v > 0) & (v <= top.detach().to(v.dtype))
        return z + torch.where(inside, v - v.detach(), torch.zeros_like(v))

    def export(self) -> SCTTFSCode | TTFSCode:
        """The current kernels as an immutable code (for conversion to Brian2)."""
        if self.calibrate is None:
            return TTFSCode(self.T, self.encode.export())
        return SCTTFSCode(self.T, self.encode.export(), self.calibrate.export())

    def extra_repr(self) -> str:
        return f"T={self.T}, calibrate={self.calibrate is not None}"


def quantization_error(code, activations: Any) -> float:
    """Mean ``|a - quantize(a)|`` of ANN activations under ``code`` (ReLU applied to ``a``)."""
    a = np.maximum(np.asarray(activations, dtype=np.float64), 0.0)
    return float(np.mean(np.abs(a - code.quantize(a))))
