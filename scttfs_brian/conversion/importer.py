r"""Torch ANN -> SC-TTFS layer graph (SPEC section 2), and the kernel initialization rule.

:func:`convert` reads a trained ReLU network (an ``nn.Module``) with ``torch.fx`` symbolic tracing,
so that both ``nn.Sequential`` stacks and hand-written ``forward`` methods (ResNet blocks with
``F.relu``, ``out + shortcut``, ``x.view(x.size(0), -1)``) are understood, and returns a
:class:`~scttfs_brian.network.SpikingNetwork` over a :class:`~scttfs_brian.graph.Graph`:

* every ReLU becomes a **spiking layer** (its code quantizes ``max(0, x)``); the value it receives
  is an affine expression of earlier spiking layers: the linear operations between two ReLUs
  (Linear, Conv2d, AvgPool2d, Flatten, ...) accumulate into one :class:`~scttfs_brian.graph.Projection`
  per source, and an addition of branches (a residual block) gives a layer with two projections,
  the shortcut from the block's input (delayed by the graph so both arrive in the same window);
* **BatchNorm** is folded into the preceding weight operation (eq. 24):
  :math:`W \leftarrow W\gamma/\sigma`, :math:`b \leftarrow \beta + (b-\mu)\gamma/\sigma`,
  :math:`\sigma = \sqrt{\mathrm{running\_var} + \epsilon}` (a BatchNorm with no weight operation
  before it, e.g. straight after a ReLU, becomes a diagonal 1x1 convolution / dense map: still exact);
* **biases** are pushed through the operations that follow them (a constant through a padded
  convolution is not constant at the borders), so a layer's bias is exact per neuron;
* **average pooling** is linear and folds into the next weight operation (no extra window);
* the returned tensor (no ReLU after it) is the **output layer** ``"output"``: it only integrates.

Conventions (decisions of this module):

* A ReLU applied to the output of another ReLU is the identity and is folded away (no extra layer).
  A ReLU applied straight to the (possibly negative) input becomes a spiking layer of its own.
* Layer names: an ``nn.ReLU`` module gives its qualified path (``"features.2"``,
  ``"layer1.0.relu"``); a functional ReLU (``F.relu``, ``torch.relu``, ``x.relu()``) gives
  ``"<path of the module whose output it rectifies>.relu"`` (for a sum of branches, the left
  operand's), e.g. ``"fc1.relu"``, ``"layer1.0.bn2.relu"``. A name seen before (one ``nn.ReLU``
  called several times) gets ``_1``, ``_2``, ... in order of execution; ``"input"`` and
  ``"output"`` are reserved; the output layer is ``"output"``.
* After conversion the graph is checked against the model: with plain ReLUs in place of the codes
  it must reproduce the model's output on a random input (float64), otherwise :func:`convert`
  raises (this catches forward methods whose meaning tracing cannot see, e.g. in-place updates of
  a tensor that is used again).

Anything without an exact SC-TTFS equivalent (max pooling, other activations, layer/group norm,
grouped or dilated convolutions, concatenation, attention, ...) raises ``ValueError`` naming the
module (or the function and the module whose ``forward`` calls it) and what to use instead.
"""

from __future__ import annotations

import copy
import math
import numbers
import operator
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from ..coding import SCTTFSCode, ThresholdKernel, TTFSCode
from ..graph import INPUT, AvgPool2d, Conv2d, Dense, Flatten, Graph, Layer, Projection
from ..network import SpikingNetwork

__all__ = ["convert", "load_state_dict", "code_from_activations", "ann_activations", "OUTPUT"]

#: Name of the output layer of every converted graph.
OUTPUT = "output"

_F64 = torch.float64
_KINDS = ("sc-ttfs", "ttfs")
_SUPPORTED = (
    "nn.Linear, nn.Conv2d (groups=1, dilation=1), nn.BatchNorm1d/2d, nn.ReLU (or F.relu), "
    "nn.AvgPool2d, nn.AdaptiveAvgPool2d (evenly dividing), nn.Flatten / view / reshape to (N, -1), "
    "nn.Dropout, nn.Identity and additions of branches (residual blocks)"
)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def convert(
    ann: nn.Module,
    input_shape: Any,
    code: Any = "auto",
    *,
    calibration_data: Any = None,
    T: int | None = None,
    kind: str = "sc-ttfs",
    input_code: Any = None,
) -> SpikingNetwork:
    """Convert a trained ReLU network into an SC-TTFS (or TTFS) spiking network.

    Parameters
    ----------
    ann : torch.nn.Module
        The trained ANN. It is not modified: conversion works on a float64 copy in eval mode
        (BatchNorm uses its running statistics).
    input_shape : tuple of int
        Shape of one input sample without the batch axis, e.g. ``(1, 8, 8)`` or ``(64,)``.
    code : SCTTFSCode, TTFSCode, dict or "auto"
        One code for every spiking layer; or ``{layer_name: code}`` covering every spiking layer;
        or ``"auto"``: each layer's kernels are fitted to the ANN's activations at its ReLU on
        ``calibration_data`` by :func:`code_from_activations` (window ``T``, codes of ``kind``).
    calibration_data : tensor or iterable of batches, optional
        Needed by ``code="auto"`` (and ``input_code="auto"``). A tensor / array is one batch
        ``(B, *input_shape)``; any other iterable yields batches, each a tensor or a tuple whose
        first element is the input (as a ``DataLoader`` yields ``(x, y)``).
    T : int, optional
        Window length in steps for ``"auto"`` codes; with given codes it must match theirs.
    kind : {"sc-ttfs", "ttfs"}
        Which code ``"auto"`` fits: SC-TTFS (eqs. 9-17) or the single-spike TTFS baseline.
    input_code : SCTTFSCode, TTFSCode, "auto" or None
        ``None``: the input is analog, the first layer's potential starts at ``W x + b``
        (SPEC section 2). A code (or ``"auto"``, fitted to the calibration inputs): the pixels
        are encoded by a spiking input layer, so inputs must be non-negative.

    Returns
    -------
    SpikingNetwork
        ``.graph`` holds the layers; ``.functional`` / ``.simulate`` run it.

    Raises
    ------
    ValueError
        For an unsupported module or function (naming it and what to use instead), an
        ``input_shape`` the model does not accept, non-finite weights or BatchNorm statistics,
        codes that do not cover the layers, or a model the graph does not reproduce.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'sc-ttfs' or 'ttfs' (got {kind!r})")
    traced = _trace(ann, input_shape)
    names = [spec.name for spec in traced.layers if spec.name != OUTPUT]
    if not names and input_code is None:
        raise ValueError(
            f"{type(ann).__name__} has no ReLU, so its conversion has no spiking layer; convert a ReLU network, "
            "or encode the input (input_code=...) to run a linear model on spikes"
        )
    batches = None
    if _is_auto(code) or _is_auto(input_code):
        if calibration_data is None or T is None:
            raise ValueError(
                "code='auto' (or input_code='auto') needs calibration_data (a batch of inputs) and T "
                f"(the window length in steps); got calibration_data={type(calibration_data).__name__}, T={T!r}"
            )
        batches = _as_batches(calibration_data, traced.input_shape)
    codes = _resolve_codes(code, names, traced, batches, T, kind)
    if _is_auto(input_code):
        x = np.concatenate([b.numpy() for b in batches])
        if np.any(x < 0):
            raise ValueError(
                f"input_code='auto' needs non-negative inputs (got a minimum of {x.min()}); an encoded "
                "input cannot be negative: rescale the inputs to [0, 1] or keep input_code=None (analog)"
            )
        input_code = code_from_activations(x, T, kind)
    elif input_code is not None and T is not None and getattr(input_code, "T", T) != T:
        raise ValueError(f"input_code has T={input_code.T}, but T={T} was given; all windows must match")
    layers = [Layer(s.name, s.shape, s.projections, s.bias, codes.get(s.name)) for s in traced.layers]
    graph = Graph(traced.input_shape, layers, input_code=input_code)
    _check_reproduces(traced, graph, nonnegative=input_code is not None)
    return SpikingNetwork(graph)


def ann_activations(ann: nn.Module, batches: Any) -> dict[str, np.ndarray]:
    """The ANN's post-ReLU activations at every spiking layer of its converted graph.

    Parameters
    ----------
    ann : torch.nn.Module
        The ANN (not modified; run as a float64 copy in eval mode).
    batches : tensor or iterable of batches
        As ``calibration_data`` of :func:`convert`; the input shape is read from the first batch.

    Returns
    -------
    dict
        ``{layer_name: array of shape (N, *layer_shape)}`` in float64, names as in the graph
        :func:`convert` builds (the output layer is not included: it has no ReLU).
    """
    batches = _as_batches(batches, None)
    traced = _trace(ann, tuple(batches[0].shape[1:]))
    return _activations(traced, batches)


def code_from_activations(
    acts: Any, T: int, kind: str = "sc-ttfs", *, percentile: float = 99.9, max_samples: int = 20_000
) -> SCTTFSCode | TTFSCode:
    r"""Kernels fitted to a layer's activations: the initialization used by ``code="auto"``.

    The paper's Table 1 kernels were set by hand; this rule fits them to data. Each kernel is
    parametrized by its first value :math:`\theta(0) = \alpha` and its decay ``k``, with
    ``beta = 0`` (``alpha`` and ``beta`` are redundant in eq. 14: only :math:`\alpha e^\beta` counts).

    1. ``top`` = the ``percentile`` (99.9th) of the positive activations (1.0 if there are none).
    2. The loss is the mean absolute conversion error :math:`\overline{|a - q(a)|}` over (a
       deterministic subsample of at most ``max_samples`` of) all activations, ``q`` the code's
       ``quantize``: it contains all three error terms of eqs. 18-19 (below the smallest code,
       above the largest, and inside the range). Zeros and negatives decode to 0.
    3. The largest decodable value (``theta_e(0)``, plus ``theta_c(0)`` for SC-TTFS) is kept in
       ``[top/2, 2 top]``; the decay of each kernel keeps ``theta(T-1) >= 1e-8 theta(0)``.
    4. Start: the best of 10 encoding decays spanning ``theta_e(T-1)/theta_e(0)`` from 1e-3 to 0.5,
       with (SC-TTFS) the calibration kernel covering half the first encoding gap,
       ``theta_c(0) = (theta_e(0) - theta_e(1))/2``, and the same decay.
       Then coordinate descent on the log-parameters with steps 0.4, 0.2, ..., 0.025.

    The search is deterministic and takes well under 0.5 s for ``T <= 16``.

    Parameters
    ----------
    acts : array-like
        Activations of one layer (any shape), e.g. from :func:`ann_activations`.
    T : int
        Window length in steps.
    kind : {"sc-ttfs", "ttfs"}
        Which code to fit.

    Returns
    -------
    SCTTFSCode or TTFSCode
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'sc-ttfs' or 'ttfs' (got {kind!r})")
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"T must be a positive integer number of steps (got {T!r})")
    T = int(T)
    if isinstance(acts, torch.Tensor):
        acts = acts.detach().cpu().numpy()
    a = np.asarray(acts, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("acts is empty; pass the activations of at least one sample")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"acts holds {np.count_nonzero(~np.isfinite(a))} non-finite value(s); check the ANN")
    positive = a[a > 0]
    top = float(np.percentile(positive, percentile)) if positive.size else 1.0
    if a.size > max_samples:
        a = a[np.sort(np.random.default_rng(0).choice(a.size, max_samples, replace=False))]
    fit = _KernelFit(a, T, top, kind)
    return fit.code(fit.search())


def load_state_dict(model: nn.Module, path: Any) -> nn.Module:
    """Load weights saved with ``torch.save(model.state_dict(), path)`` into ``model``; return it.

    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``: only
    tensors and plain containers, never pickled code, so an untrusted file cannot run anything.
    A checkpoint dict with the weights under ``"state_dict"`` is accepted, and a ``"module."``
    prefix (``DataParallel``) is removed when the model's own names lack it.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(
            f"{path} could not be read as a state_dict with weights_only=True ({err}); save weights with "
            "torch.save(model.state_dict(), path): pickled objects are refused"
        ) from err
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state_dict (a mapping name -> tensor)"
        )
    own = model.state_dict()
    if (
        state
        and all(k.startswith("module.") for k in state)
        and not any(k.startswith("module.") for k in own)
    ):
        state = {k[len("module.") :]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the state_dict in {path} does not match {type(model).__name__}: {err}") from err
    return model


# --------------------------------------------------------------------------------------------
# Tracing: the model as a list of layer specifications
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Affine:
    """A tensor inside the ANN as an affine function of spiking populations: the sum over
    ``terms`` ``(source, ops)`` of the ops applied to the source, plus ``bias`` (one sample)."""

    terms: tuple
    bias: torch.Tensor
    origin: str  #: path of the module that produced it (names functional ReLUs)

    @property
    def shape(self) -> tuple:
        return tuple(self.bias.shape)


@dataclass
class _LayerSpec:
    name: str
    shape: tuple
    projections: list
    bias: np.ndarray
    node: str | None  #: fx node of its ReLU (None for the output)


@dataclass
class _Traced:
    module: torch.fx.GraphModule  #: float64 eval copy of the ANN
    input_shape: tuple
    layers: list
    device: torch.device


def _trace(ann: nn.Module, input_shape: Any) -> _Traced:
    if not isinstance(ann, nn.Module):
        raise TypeError(
            f"ann must be a torch.nn.Module (got {type(ann).__name__}); load weights with load_state_dict"
        )
    input_shape = _shape(input_shape)
    _check_finite(ann)
    model = copy.deepcopy(ann).eval().to(_F64)
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as err:  # tracing errors come in many types
        raise ValueError(
            f"torch.fx could not trace {type(ann).__name__}.forward ({type(err).__name__}: {err}); convert needs "
            "a forward without data-dependent control flow, built from " + _SUPPORTED
        ) from err
    param = next(iter(gm.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    info = _record(gm, input_shape, device)
    walker = _Walker(gm, info, input_shape)
    return _Traced(gm, input_shape, walker.run(), device)


def _shape(input_shape: Any) -> tuple:
    if isinstance(input_shape, numbers.Integral):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = bool(shape) and all(s == v and s >= 1 for s, v in zip(shape, input_shape, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"input_shape must be a tuple of positive ints without the batch axis, e.g. (1, 8, 8) (got {input_shape!r})"
        )
    return shape


def _check_finite(ann: nn.Module) -> None:
    tensors = list(ann.named_parameters()) + list(ann.named_buffers())
    for name, t in tensors:
        if t is None or not t.is_floating_point():
            continue
        bad = int((~torch.isfinite(t.detach())).sum())
        if bad:
            path = name.rpartition(".")[0]
            owner = ann.get_submodule(path) if path else ann
            raise ValueError(
                f"parameter '{name}' of {type(owner).__name__} '{path or '(root)'}' holds {bad} non-finite "
                "value(s) (NaN or inf); fix or re-train the model before converting"
            )


class _Recorder(torch.fx.Interpreter):
    """Runs the traced model once, keeping each node's shape (tensors) or value (sizes, ints)."""

    def __init__(self, gm: torch.fx.GraphModule, capture: Mapping | None = None):
        super().__init__(gm)
        self.extra_traceback = False
        self.capture = capture or {}
        self.values: dict = {}
        self.current = None

    def run_node(self, n):
        self.current = n
        out = super().run_node(n)
        if n.name in self.capture:
            self.values[n.name] = out.detach().to("cpu", _F64).numpy().copy()  # copy: in-place ops follow
        elif not self.capture:
            self.values[n] = _TensorInfo(tuple(out.shape)) if isinstance(out, torch.Tensor) else out
        return out


@dataclass(frozen=True)
class _TensorInfo:
    shape: tuple


def _record(gm: torch.fx.GraphModule, input_shape: tuple, device) -> dict:
    # batch of 2: a reshape that mixes samples (view(-1)) shows up as a wrong batch axis
    rec = _Recorder(gm)
    try:
        with torch.no_grad():
            rec.run(torch.zeros((2,) + input_shape, dtype=_F64, device=device))
    except Exception as err:
        where = _where(gm, rec.current) if rec.current is not None else "the model"
        raise ValueError(
            f"input_shape {input_shape} does not fit the model: {where} failed with {type(err).__name__}: {err}"
        ) from err
    return rec.values


def _activations(traced: _Traced, batches: list) -> dict:
    capture = {s.node: s.name for s in traced.layers if s.node is not None}
    out: dict[str, list] = {name: [] for name in capture.values()}
    for x in batches:
        rec = _Recorder(traced.module, capture)
        with torch.no_grad():
            rec.run(x.to(traced.device, _F64))
        for node, name in capture.items():
            out[name].append(rec.values[node])
    return {name: np.concatenate(parts) for name, parts in out.items()}


# --------------------------------------------------------------------------------------------
# The walk over the fx graph
# --------------------------------------------------------------------------------------------
def _fname(target: Any) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    name = getattr(target, "__name__", repr(target))
    mod = getattr(target, "__module__", None) or "torch"
    mod = {"_operator": "operator", "torch._C._nn": "torch.nn.functional"}.get(mod, mod)
    return f"{mod}.{name}"


def _scope(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "the model's forward"
    path, cls = list(stack.values())[-1]
    cls_name = getattr(cls, "__name__", str(cls).rpartition(".")[2].strip("'>"))
    return f"{cls_name}.forward of '{path}'"


def _where(gm: torch.fx.GraphModule, node) -> str:
    if node.op == "call_module":
        return f"{type(gm.get_submodule(node.target)).__name__} at '{node.target}'"
    if node.op == "call_method":
        return f"method Tensor.{node.target}() (node '{node.name}' in {_scope(node)})"
    if node.op == "call_function":
        return f"function {_fname(node.target)} (node '{node.name}' in {_scope(node)})"
    return f"{node.op} '{node.target}'"


_ADVICE = [  # (name prefixes of modules / functions, what to say)
    (
        "maxpool max_pool adaptivemaxpool adaptive_max_pool fractionalmaxpool fractional_max_pool lppool lp_pool",
        "has no exact SC-TTFS equivalent (the maximum of decoded spikes is not linear); use nn.AvgPool2d, "
        "which is linear and folds into the next weight layer",
    ),
    (
        "relu6 hardtanh",
        "clips its output; SC-TTFS neurons quantize max(0, x): use nn.ReLU (the code's largest value clips anyway)",
    ),
    (
        "gelu silu elu selu celu sigmoid tanh leaky prelu rrelu softplus softsign mish hardswish hardsigmoid "
        "logsigmoid threshold glu swish",
        "is not a ReLU; SC-TTFS neurons quantize max(0, x) only: train the ANN with nn.ReLU",
    ),
    (
        "layernorm layer_norm groupnorm group_norm instancenorm instance_norm rmsnorm rms_norm "
        "localresponsenorm local_response_norm normalize",
        "depends on each input's own statistics and cannot be folded into weights; use nn.BatchNorm1d/2d "
        "(folded into the preceding layer, eq. 24)",
    ),
    (
        "softmax log_softmax logsoftmax softmin",
        "must be removed before conversion: the prediction is the argmax of the output layer's potentials, "
        "which softmax does not change",
    ),
    (
        "multihead scaled_dot transformer lstm gru rnn embedding",
        "has no SC-TTFS equivalent; convert a feed-forward ReLU network",
    ),
    (
        "cat concat stack",
        "concatenates tensors, which is not supported; only additions of branches (residual blocks) are",
    ),
    (
        "conv1d conv3d convtranspose conv_transpose",
        "is not supported; only nn.Conv2d and nn.Linear weight layers are",
    ),
]


def _refusal(gm, node, reason: str | None = None) -> ValueError:
    where = _where(gm, node)
    if reason is None:
        key = (
            type(gm.get_submodule(node.target)).__name__ if node.op == "call_module" else _fname(node.target)
        )
        key = key.rpartition(".")[2].lower()
        reason = next(
            (advice for words, advice in _ADVICE if key.startswith(tuple(words.split()))),
            f"is not supported; the importer knows {_SUPPORTED}",
        )
    return ValueError(f"{where} {reason}")


_RELU_FUNCS = {F.relu, torch.relu, torch.relu_, F.relu_}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_DROPOUT_FUNCS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
_RESHAPE_FUNCS = {torch.flatten, torch.reshape}
_IDENTITY_METHODS = {"contiguous", "clone", "float", "double"}
_RESHAPE_METHODS = {"view", "reshape", "flatten"}
_DROPOUT_MODULES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


class _Walker:
    """Interprets the fx graph abstractly: tensors become :class:`_Affine` expressions of spiking
    populations; each ReLU closes one into a layer."""

    def __init__(self, gm: torch.fx.GraphModule, info: dict, input_shape: tuple):
        self.gm = gm
        self.info = info
        self.input_shape = input_shape
        self.layers: list[_LayerSpec] = []
        self.used = {INPUT, OUTPUT}

    def run(self) -> list:
        env: dict = {}
        seen_input = False
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if seen_input:
                    raise ValueError(
                        f"the model's forward takes more than one input ('{node.target}'); convert needs one"
                    )
                seen_input = True
                zero = torch.zeros(self.input_shape, dtype=_F64)
                env[node] = _Affine(((INPUT, ()),), zero, INPUT)
            elif node.op == "output":
                self._output(node, env)
            elif node.op == "get_attr":
                raise _refusal(
                    self.gm, node, "reads a parameter or buffer directly in forward; wrap it in a module"
                )
            elif not isinstance(self.info[node], _TensorInfo):
                if _holds_tensor(self.info[node]):
                    raise _refusal(self.gm, node)
                env[node] = self.info[node]  # sizes, ints: concrete values
            else:
                shape = self.info[node].shape
                if len(shape) == 0 or shape[0] != 2:
                    raise _refusal(
                        self.gm, node, f"mixes the samples of a batch (output shape {shape} for a batch of 2)"
                    )
                args = torch.fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
                out = self._dispatch(node, args, kwargs, shape[1:])
                if out.shape != shape[1:]:  # a bug here, never the user's
                    raise RuntimeError(
                        f"importer: shape {out.shape} != torch's {shape[1:]} at {_where(self.gm, node)}"
                    )
                env[node] = out
        return self._prune()

    # -- dispatch -----------------------------------------------------------------------------
    def _dispatch(self, node, args, kwargs, out_shape) -> _Affine:
        gm = self.gm
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if len(args) != 1 or kwargs or not isinstance(args[0], _Affine):
                raise _refusal(gm, node, "is called with extra arguments")
            return self._module(node, mod, args[0], out_shape)
        target = node.target
        if node.op == "call_function":
            if target in _RELU_FUNCS:
                return self._relu(node, self._tensor_arg(node, args), None)
            if target in _ADD_FUNCS:
                return self._add(node, args, kwargs)
            if target in _RESHAPE_FUNCS:
                return self._reshape(node, self._tensor_arg(node, args), out_shape)
            if target in _DROPOUT_FUNCS:
                return self._tensor_arg(node, args)
            if target is F.avg_pool2d:
                p = _bind(
                    args,
                    kwargs,
                    "input kernel_size stride padding ceil_mode count_include_pad divisor_override",
                    (None, 0, False, True, None),
                )
                return self._avg_pool(node, p, out_shape)
            if target is F.adaptive_avg_pool2d:
                p = _bind(args, kwargs, "input output_size", ())
                return self._adaptive(node, p["input"], p["output_size"])
        elif node.op == "call_method":
            if target in ("relu", "relu_"):
                return self._relu(node, self._tensor_arg(node, args), None)
            if target in ("add", "add_", "__add__", "__iadd__"):
                return self._add(node, args, kwargs)
            if target in _RESHAPE_METHODS:
                return self._reshape(node, self._tensor_arg(node, args), out_shape)
            if target in _IDENTITY_METHODS:
                return self._tensor_arg(node, args)
        raise _refusal(gm, node)

    def _tensor_arg(self, node, args) -> _Affine:
        if not args or not isinstance(args[0], _Affine):
            raise _refusal(self.gm, node, "is applied to something that is not the network's signal")
        return args[0]

    def _module(self, node, mod, x: _Affine, out_shape) -> _Affine:
        path = node.target
        if isinstance(mod, nn.ReLU):
            return self._relu(node, x, path)
        if isinstance(mod, nn.Linear):
            if len(x.shape) != 1:
                raise _refusal(
                    self.gm, node, f"is applied to a tensor of shape {x.shape}; flatten it first (nn.Flatten)"
                )
            return self._weight(x, Dense(_numpy(mod.weight)), mod.bias, path)
        if isinstance(mod, nn.Conv2d):
            return self._weight(x, self._conv(node, mod), mod.bias, path)
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)):
            return self._batch_norm(node, mod, x, path)
        if isinstance(mod, nn.AvgPool2d):
            p = {
                "input": x,
                "kernel_size": mod.kernel_size,
                "stride": mod.stride,
                "padding": mod.padding,
                "ceil_mode": mod.ceil_mode,
                "count_include_pad": mod.count_include_pad,
                "divisor_override": mod.divisor_override,
            }
            return self._avg_pool(node, p, out_shape, origin=path)
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            return self._adaptive(node, x, mod.output_size, origin=path)
        if isinstance(mod, nn.Flatten):
            return self._reshape(node, x, out_shape)
        if isinstance(mod, (nn.Identity, *_DROPOUT_MODULES)):
            return x
        raise _refusal(self.gm, node)

    # -- operations -----------------------------------------------------------------------------
    def _conv(self, node, mod: nn.Conv2d) -> Conv2d:
        if mod.groups != 1:
            raise _refusal(
                self.gm,
                node,
                f"has groups={mod.groups}; only groups=1 is supported (grouped and "
                "depthwise convolutions: re-train with groups=1)",
            )
        if tuple(mod.dilation) != (1, 1):
            raise _refusal(self.gm, node, f"has dilation={tuple(mod.dilation)}; only dilation=1 is supported")
        if mod.padding_mode != "zeros":
            raise _refusal(self.gm, node, f"has padding_mode={mod.padding_mode!r}; only 'zeros' is supported")
        padding = mod.padding
        if isinstance(padding, str):
            kh, kw = mod.kernel_size
            if padding == "valid":
                padding = (0, 0)
            elif (kh - 1) % 2 or (kw - 1) % 2:
                raise _refusal(
                    self.gm,
                    node,
                    f"has padding='same' with an even kernel {mod.kernel_size}, which pads "
                    "unevenly; use an odd kernel or explicit padding",
                )
            else:
                padding = ((kh - 1) // 2, (kw - 1) // 2)
        return Conv2d(_numpy(mod.weight), tuple(mod.stride), tuple(padding))

    def _weight(self, x: _Affine, op, bias_param, origin: str) -> _Affine:
        out = self._then(x, op, origin)
        if bias_param is not None:
            b = bias_param.detach().to("cpu", _F64)
            out = _Affine(out.terms, out.bias + b.reshape((-1,) + (1,) * (out.bias.dim() - 1)), origin)
        return out

    def _then(self, x: _Affine, op, origin: str) -> _Affine:
        terms = tuple((src, ops + (op,)) for src, ops in x.terms)
        return _Affine(terms, _torch_op(op, x.bias[None])[0], origin)

    def _batch_norm(self, node, mod, x: _Affine, path: str) -> _Affine:
        """Fold BatchNorm into the weight operations before it (eq. 24)."""
        if mod.running_mean is None or mod.running_var is None:
            raise _refusal(
                self.gm,
                node,
                "has no running statistics (track_running_stats=False), so it normalizes "
                "each batch by itself and cannot be folded; train with track_running_stats=True",
            )
        want = 1 if isinstance(mod, nn.BatchNorm1d) else 3
        if len(x.shape) != want or x.shape[0] != mod.num_features:
            raise _refusal(self.gm, node, f"is applied to a tensor of shape {x.shape}")
        sigma = torch.sqrt(mod.running_var.detach().to("cpu", _F64) + mod.eps)
        gamma = mod.weight.detach().to("cpu", _F64) if mod.weight is not None else torch.ones_like(sigma)
        beta = mod.bias.detach().to("cpu", _F64) if mod.bias is not None else torch.zeros_like(sigma)
        mu = mod.running_mean.detach().to("cpu", _F64)
        scale = gamma / sigma
        terms = []
        for src, ops in x.terms:
            scaled = _scale_ops(ops, scale.numpy())
            if scaled is None:  # nothing to fold into: an exact diagonal map
                scaled = ops + (_diagonal(scale.numpy(), len(x.shape)),)
            terms.append((src, scaled))
        per_channel = (-1,) + (1,) * (len(x.shape) - 1)
        bias = beta.reshape(per_channel) + (x.bias - mu.reshape(per_channel)) * scale.reshape(per_channel)
        return _Affine(tuple(terms), bias, path)

    def _avg_pool(self, node, p: dict, out_shape, origin: str | None = None) -> _Affine:
        x = p["input"]
        if not isinstance(x, _Affine):
            raise _refusal(self.gm, node, "is applied to something that is not the network's signal")
        if not p["count_include_pad"] and _pair(p["padding"]) != (0, 0):
            raise _refusal(
                self.gm,
                node,
                "has count_include_pad=False with padding; use count_include_pad=True "
                "(padded zeros count in the mean)",
            )
        if p["divisor_override"] is not None:
            raise _refusal(self.gm, node, f"has divisor_override={p['divisor_override']}; remove it")
        stride = p["stride"] if p["stride"] not in (None, [], ()) else p["kernel_size"]
        op = AvgPool2d(_pair(p["kernel_size"]), _pair(stride), _pair(p["padding"]))
        if len(x.shape) != 3:
            raise _refusal(self.gm, node, f"is applied to a tensor of shape {x.shape}; it needs (C, H, W)")
        if op.out_shape(x.shape) != tuple(out_shape):  # ceil_mode that adds windows
            raise _refusal(
                self.gm, node, "has ceil_mode=True adding partial windows at the border; use ceil_mode=False"
            )
        return self._then(x, op, origin or x.origin)

    def _adaptive(self, node, x, output_size, origin: str | None = None) -> _Affine:
        if not isinstance(x, _Affine) or len(x.shape) != 3:
            raise _refusal(self.gm, node, "needs a (C, H, W) tensor")
        _, H, W = x.shape
        oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        oh, ow = oh or H, ow or W
        if H % oh or W % ow:
            raise _refusal(
                self.gm,
                node,
                f"maps {H}x{W} to {oh}x{ow}, which is not an even split, so its windows "
                "differ in size; choose an input size divisible by the output size, or nn.AvgPool2d",
            )
        if (H // oh, W // ow) == (1, 1):
            return x
        return self._then(x, AvgPool2d((H // oh, W // ow)), origin or x.origin)

    def _reshape(self, node, x: _Affine, out_shape) -> _Affine:
        out_shape = tuple(out_shape)
        if out_shape == x.shape:
            return x
        if len(out_shape) == 1 and out_shape[0] == math.prod(x.shape):
            return self._then(x, Flatten(), x.origin)
        raise _refusal(
            self.gm, node, f"reshapes {x.shape} to {out_shape}; only flattening to (N, -1) is supported"
        )

    def _add(self, node, args, kwargs) -> _Affine:
        p = _bind(args, kwargs, "input other alpha", (1,))
        a, b, alpha = p["input"], p["other"], p["alpha"]
        if alpha != 1:
            raise _refusal(self.gm, node, f"has alpha={alpha}; only plain additions are supported")
        if not isinstance(a, _Affine):
            a, b = b, a
        if isinstance(b, numbers.Real) and not isinstance(b, bool):
            return _Affine(a.terms, a.bias + float(b), a.origin)
        if not isinstance(b, _Affine) or a.shape != b.shape:
            shape_b = b.shape if isinstance(b, _Affine) else type(b).__name__
            raise _refusal(
                self.gm, node, f"adds {a.shape} and {shape_b}; only additions of equal shapes are supported"
            )
        return _Affine(a.terms + b.terms, a.bias + b.bias, a.origin)

    def _relu(self, node, x: _Affine, path: str | None) -> _Affine:
        if not x.terms:
            raise _refusal(self.gm, node, "receives a constant that does not depend on the input")
        if len(x.terms) == 1 and x.terms[0][1] == () and x.terms[0][0] != INPUT and not bool(x.bias.any()):
            return x  # ReLU of a ReLU's output: the identity (decoded values are >= 0)
        name = self._unique(path if path is not None else f"{x.origin}.relu")
        projections = [Projection(src, ops) for src, ops in x.terms]
        self.layers.append(
            _LayerSpec(name, x.shape, projections, x.bias.reshape(-1).numpy().copy(), node.name)
        )
        return _Affine(((name, ()),), torch.zeros(x.shape, dtype=_F64), name)

    def _output(self, node, env) -> None:
        arg = node.args[0]
        value = env.get(arg) if isinstance(arg, torch.fx.Node) else arg
        if not isinstance(value, _Affine):
            raise ValueError(
                f"the model returns a {type(value).__name__}; convert needs forward to return one tensor"
            )
        if not value.terms:
            raise ValueError("the model's output does not depend on its input; nothing to convert")
        projections = [Projection(src, ops) for src, ops in value.terms]
        self.layers.append(
            _LayerSpec(OUTPUT, value.shape, projections, value.bias.reshape(-1).numpy().copy(), None)
        )

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def _prune(self) -> list:
        """Drop layers the output does not read (branches computed but never used)."""
        needed = {OUTPUT}
        for spec in reversed(self.layers):
            if spec.name in needed:
                needed.update(p.source for p in spec.projections)
        return [spec for spec in self.layers if spec.name in needed]


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return False


def _bind(args, kwargs, names: str, defaults: tuple) -> dict:
    names = names.split()
    required = len(names) - len(defaults)
    out = dict(zip(names[required:], defaults, strict=True))
    out.update(zip(names, args, strict=False))
    out.update(kwargs)
    return out


def _pair(x: Any) -> tuple[int, int]:
    if isinstance(x, numbers.Integral):
        return (int(x), int(x))
    x = tuple(int(v) for v in x)
    return x * 2 if len(x) == 1 else x


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", _F64).numpy().copy()


def _scale_ops(ops: tuple, s: np.ndarray) -> tuple | None:
    """``ops`` with their output scaled by ``s`` along the channel axis, folded into the last
    weight operation (eq. 24); average pooling, acting per channel, commutes with the scaling."""
    if not ops:
        return None
    last = ops[-1]
    if isinstance(last, Dense):
        return ops[:-1] + (Dense(last.weight * s[:, None]),)
    if isinstance(last, Conv2d):
        return ops[:-1] + (Conv2d(last.weight * s[:, None, None, None], last.stride, last.padding),)
    if isinstance(last, AvgPool2d):
        head = _scale_ops(ops[:-1], s)
        return None if head is None else head + (last,)
    return None


def _diagonal(s: np.ndarray, ndim: int):
    return Dense(np.diag(s)) if ndim == 1 else Conv2d(np.diag(s)[:, :, None, None])


def _torch_op(op, x: torch.Tensor) -> torch.Tensor:
    """One graph operation on a batch ``x`` (float64 torch): bias propagation and the check."""
    if isinstance(op, Dense):
        return x @ torch.from_numpy(op.weight).to(x.device).T
    if isinstance(op, Conv2d):
        return F.conv2d(x, torch.from_numpy(op.weight).to(x.device), stride=op.stride, padding=op.padding)
    if isinstance(op, AvgPool2d):
        return F.avg_pool2d(x, op.kernel, op.stride, op.padding)
    if isinstance(op, Flatten):
        return x.reshape(len(x), -1)
    raise TypeError(f"unknown graph operation {type(op).__name__}")


def _relu_reference(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """The graph with plain ReLUs in place of the codes (what the ANN computes)."""
    values = {INPUT: x}
    for layer in graph.layers:
        total = torch.from_numpy(layer.bias).reshape((1,) + layer.shape).to(x.device)
        for proj in layer.inputs:
            y = values[proj.source]
            for op in proj.ops:
                y = _torch_op(op, y)
            total = total + y
        values[layer.name] = total.clamp_min(0) if layer.spiking else total
    return values[graph.output.name]


def _check_reproduces(traced: _Traced, graph: Graph, nonnegative: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    shape = (2,) + traced.input_shape
    x = (
        torch.rand(shape, generator=gen, dtype=_F64)
        if nonnegative
        else torch.randn(shape, generator=gen, dtype=_F64)
    )
    with torch.no_grad():
        want = traced.module(x.to(traced.device)).to("cpu")
        got = _relu_reference(graph, x)
    err = float((want - got).abs().max())
    if not err <= 1e-8 * (1.0 + float(want.abs().max())):
        raise ValueError(
            f"the converted graph does not reproduce the model (max |difference| {err:.3g} on a random input with "
            "plain ReLUs); forward probably updates in place a tensor that is used again, or uses values computed "
            "from the data as constants: rewrite forward without them"
        )


# --------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------
def _is_auto(code: Any) -> bool:
    return isinstance(code, str) and code == "auto"


def _as_batches(data: Any, input_shape: tuple | None) -> list:
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = [data]
    elif not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        raise TypeError(
            f"calibration data must be a tensor or an iterable of batches (got {type(data).__name__})"
        )
    batches = []
    for item in data:
        if isinstance(item, (tuple, list)) and item:
            item = item[0]
        x = (
            torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item)
            .detach()
            .to("cpu", _F64)
        )
        shape = tuple(x.shape[1:])
        if input_shape is not None and shape != tuple(input_shape):
            raise ValueError(
                f"a calibration batch has shape {tuple(x.shape)}; expected (B, *{tuple(input_shape)})"
            )
        if batches and shape != tuple(batches[0].shape[1:]):
            raise ValueError(
                f"calibration batches differ in sample shape: {tuple(batches[0].shape[1:])} and {shape}"
            )
        if x.dim() < 2 or not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"calibration batches must be finite (B, *input_shape) tensors (got shape {tuple(x.shape)})"
            )
        batches.append(x)
    if not batches:
        raise ValueError("calibration data holds no batch")
    return batches


def _resolve_codes(code: Any, names: list, traced: _Traced, batches, T, kind) -> dict:
    if _is_auto(code):
        if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
            raise ValueError(f"T must be a positive integer number of steps for code='auto' (got {T!r})")
        acts = _activations(traced, batches)
        return {name: code_from_activations(acts[name], int(T), kind) for name in names}
    if isinstance(code, (SCTTFSCode, TTFSCode)):
        codes = dict.fromkeys(names, code)
    elif isinstance(code, Mapping):
        missing = [n for n in names if n not in code]
        extra = [n for n in code if n not in names]
        if missing or extra:
            raise ValueError(
                f"code dict must name exactly the spiking layers {names}; missing {missing}, unknown {extra}"
            )
        codes = dict(code)
    else:
        raise TypeError(
            f"code must be an SCTTFSCode, a TTFSCode, a dict {{layer: code}} or 'auto' (got {code!r})"
        )
    if T is not None:
        wrong = {n: c.T for n, c in codes.items() if getattr(c, "T", T) != T}
        if wrong:
            raise ValueError(f"T={T} was given, but these codes have other windows: {wrong}")
    return codes


class _KernelFit:
    """The search of :func:`code_from_activations` (log-parameters: theta(0) and k per kernel)."""

    STEPS = (0.4, 0.2, 0.1, 0.05, 0.025)

    def __init__(self, a: np.ndarray, T: int, top: float, kind: str):
        self.T, self.top, self.kind = T, top, kind
        self.v = a[a > 0]
        self.fixed = float(np.abs(a[a < 0]).sum())  # negatives decode to 0
        self.n = a.size
        self.steps = np.arange(T, dtype=np.float64)
        self.k_max = math.log(1e8) / (T - 1) if T > 1 else 1.0

    def code(self, p: np.ndarray) -> SCTTFSCode | TTFSCode:
        e0, ke = math.exp(p[0]), math.exp(p[1])
        enc = ThresholdKernel(alpha=e0, beta=0.0, k=ke)
        if self.kind == "ttfs":
            return TTFSCode(self.T, enc)
        return SCTTFSCode(self.T, enc, ThresholdKernel(alpha=math.exp(p[2]), beta=0.0, k=math.exp(p[3])))

    def loss(self, p: np.ndarray) -> float:
        e0, ke = math.exp(p[0]), math.exp(p[1])
        top = e0 + (math.exp(p[2]) if self.kind == "sc-ttfs" else 0.0)
        ks = (ke,) if self.kind == "ttfs" else (ke, math.exp(p[3]))
        if not 0.5 * self.top <= top <= 2.0 * self.top or any(k > self.k_max or k < 1e-6 for k in ks):
            return math.inf
        tab_e = e0 * np.exp(-ke * self.steps)
        tab_c = math.exp(p[2]) * np.exp(-ks[1] * self.steps) if self.kind == "sc-ttfs" else None
        q = _quantize_tables(self.v, tab_e, tab_c)
        return (float(np.abs(self.v - q).sum()) + self.fixed) / self.n

    def search(self) -> np.ndarray:
        T = self.T
        starts = []
        for ratio in np.geomspace(1e-3, 0.5, 10) if T > 1 else [math.exp(-1.0)]:
            ke = -math.log(ratio) / (T - 1) if T > 1 else 1.0
            if self.kind == "ttfs":
                starts.append(np.array([math.log(self.top), math.log(ke)]))
            else:
                half_gap = 0.5 * (1.0 - math.exp(-ke))
                e0 = self.top / (1.0 + half_gap)
                starts.append(np.array([math.log(e0), math.log(ke), math.log(e0 * half_gap), math.log(ke)]))
        losses = [self.loss(p) for p in starts]
        best = starts[int(np.argmin(losses))]
        best_loss = min(losses)
        free = [0, 2] if T == 1 else list(range(len(best)))  # with one step, k plays no role
        if self.kind == "ttfs" and T == 1:
            free = [0]
        for step in self.STEPS:
            for _sweep in range(3):
                improved = False
                for i in free:
                    cands = [best + step * j * np.eye(len(best))[i] for j in (-2, -1, 1, 2)]
                    cl = [self.loss(c) for c in cands]
                    j = int(np.argmin(cl))
                    if cl[j] < best_loss:
                        best, best_loss, improved = cands[j], cl[j], True
                if not improved:
                    break
        return best


def _quantize_tables(v: np.ndarray, tab_e: np.ndarray, tab_c: np.ndarray | None) -> np.ndarray:
    """``code.quantize(v)`` for ``v > 0`` without the step loop, equal to the stepwise rule.

    The tables decrease, so the first step with ``v >= theta_e(t)`` is the number of thresholds
    above ``v``; the calibration step is the first ``s >= t_enc`` with ``r >= theta_c(s)`` for the
    residual ``r = v - theta_e(t_enc)``, which is unchanged until then (eqs. 9-13).
    """
    T = len(tab_e)
    t_enc = T - np.searchsorted(tab_e[::-1], v, side="right")
    fired = t_enc < T
    t_e = np.minimum(t_enc, T - 1)
    z = np.where(fired, tab_e[t_e], 0.0)
    if tab_c is None:
        return z
    r = v - tab_e[t_e]
    t_cal = np.maximum(t_enc, T - np.searchsorted(tab_c[::-1], r, side="right"))
    cal = fired & (t_cal < T)
    return z + np.where(cal, tab_c[np.minimum(t_cal, T - 1)], 0.0)
