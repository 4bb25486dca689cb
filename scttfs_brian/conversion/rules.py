"""The rule table: what the converter does with each module, function and method of a forward.

:data:`RULES` is the one table. A rule names the ``nn.Module`` types, ``torch`` functions and
``Tensor`` methods it covers and either a **handler**, which turns the call into graph operations
on :class:`~.affine.Affine` expressions, or an **advice**: why it has no exact SC-TTFS equivalent
and what to use instead (a refused rule also matches unknown modules and functions by the start
of their lower-case name, e.g. every ``MaxPool*``). The list of supported modules
(:data:`SUPPORTED`) and the refusal message of anything else (:func:`refusal`) are generated
from it; adding a module means adding one rule.

A handler is called as ``handler(walker, node, module, args, kwargs, out_shape)``: ``module`` is
the called ``nn.Module`` (``None`` for a function or method), ``args`` / ``kwargs`` the call's
arguments with the network's tensors as :class:`~.affine.Affine` expressions, ``out_shape`` the
shape torch computed for one sample. ``walker`` is the :class:`~.walker.Walker`; the ReLU's handler
asks it to close a layer.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from ..graph import AvgPool2d, Conv2d, Dense, Flatten
from .affine import F64, Affine, bind, pair, to_numpy

__all__ = ["Rule", "RULES", "SUPPORTED", "supported_text", "refusal", "rule_for", "describe"]


@dataclass(frozen=True)
class Rule:
    """One entry of :data:`RULES`.

    Attributes
    ----------
    label : str
        How the supported list names it (generated from ``modules`` when empty).
    modules, functions, methods : tuple
        ``nn.Module`` types (matched with ``isinstance``), functions (``F.relu``, ``operator.add``,
        ...) and ``Tensor`` method names it covers.
    handler : callable or None
        What the converter does (see the module docstring); ``None``: refused with ``advice``.
    note : str
        A condition or alternative spelling shown after the label in the supported list.
    advice : str
        For a refused rule, the rest of the sentence "<module at path> ...".
    prefixes : str
        For a refused rule, lower-case name starts (separated by spaces) of further modules /
        functions it covers; kept as a tuple.
    """

    label: str = ""
    modules: tuple = ()
    functions: tuple = ()
    methods: tuple = ()
    handler: Callable | None = None
    note: str = ""
    advice: str = ""
    prefixes: tuple | str = ()

    def __post_init__(self) -> None:
        if isinstance(self.prefixes, str):
            object.__setattr__(self, "prefixes", tuple(self.prefixes.split()))

    @property
    def supported(self) -> bool:
        return self.handler is not None

    def describe(self) -> str:
        """The rule as the supported list shows it."""
        label = self.label or " / ".join(f"nn.{m.__name__}" for m in self.modules)
        return f"{label} ({self.note})" if self.note else label


# --------------------------------------------------------------------------------------------
# Naming nodes in messages
# --------------------------------------------------------------------------------------------
def function_name(target: Any) -> str:
    """A called function's qualified name as users write it (``torch.nn.functional.relu``)."""
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


def describe(gm: torch.fx.GraphModule, node) -> str:
    """Where a node is, for messages: ``"MaxPool2d at 'features.2'"``, ``"function ... (node
    'x' in Block.forward of 'block')"``."""
    if node.op == "call_module":
        return f"{type(gm.get_submodule(node.target)).__name__} at '{node.target}'"
    if node.op == "call_method":
        return f"method Tensor.{node.target}() (node '{node.name}' in {_scope(node)})"
    if node.op == "call_function":
        return f"function {function_name(node.target)} (node '{node.name}' in {_scope(node)})"
    return f"{node.op} '{node.target}'"


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------
def _signal(w, node, args) -> Affine:
    """The call's first argument, which must be the network's signal."""
    if not args or not isinstance(args[0], Affine):
        raise refusal(w.gm, node, "is applied to something that is not the network's signal")
    return args[0]


def _identity(w, node, mod, args, kwargs, out_shape) -> Affine:
    return _signal(w, node, args)


def _relu(w, node, mod, args, kwargs, out_shape) -> Affine:
    return w.close_layer(node, _signal(w, node, args), node.target if mod is not None else None)


def _linear(w, node, mod, args, kwargs, out_shape) -> Affine:
    x = args[0]
    if len(x.shape) != 1:
        raise refusal(w.gm, node, f"is applied to a tensor of shape {x.shape}; flatten it first (nn.Flatten)")
    return x.then(Dense(to_numpy(mod.weight)), node.target).plus_bias(mod.bias, node.target)


def _conv2d(w, node, mod, args, kwargs, out_shape) -> Affine:
    if mod.groups != 1:
        raise refusal(
            w.gm,
            node,
            f"has groups={mod.groups}; only groups=1 is supported (grouped and "
            "depthwise convolutions: re-train with groups=1)",
        )
    if tuple(mod.dilation) != (1, 1):
        raise refusal(w.gm, node, f"has dilation={tuple(mod.dilation)}; only dilation=1 is supported")
    if mod.padding_mode != "zeros":
        raise refusal(w.gm, node, f"has padding_mode={mod.padding_mode!r}; only 'zeros' is supported")
    padding = mod.padding
    if isinstance(padding, str):
        kh, kw = mod.kernel_size
        if padding == "valid":
            padding = (0, 0)
        elif (kh - 1) % 2 or (kw - 1) % 2:
            raise refusal(
                w.gm,
                node,
                f"has padding='same' with an even kernel {mod.kernel_size}, which pads "
                "unevenly; use an odd kernel or explicit padding",
            )
        else:
            padding = ((kh - 1) // 2, (kw - 1) // 2)
    op = Conv2d(to_numpy(mod.weight), tuple(mod.stride), tuple(padding))
    return args[0].then(op, node.target).plus_bias(mod.bias, node.target)


def _batch_norm(w, node, mod, args, kwargs, out_shape) -> Affine:
    """Fold BatchNorm into the weight operations before it (eq. 24)."""
    x = args[0]
    if mod.running_mean is None or mod.running_var is None:
        raise refusal(
            w.gm,
            node,
            "has no running statistics (track_running_stats=False), so it normalizes "
            "each batch by itself and cannot be folded; train with track_running_stats=True",
        )
    want = 1 if isinstance(mod, nn.BatchNorm1d) else 3
    if len(x.shape) != want or x.shape[0] != mod.num_features:
        raise refusal(w.gm, node, f"is applied to a tensor of shape {x.shape}")
    var = mod.running_var.detach().to("cpu", F64) + mod.eps
    if not bool(torch.all(torch.isfinite(var) & (var > 0))):
        bad = int(torch.count_nonzero(~(torch.isfinite(var) & (var > 0))))
        raise refusal(w.gm, node, f"has running_var + eps <= 0 or non-finite in {bad} channel(s) "
                      f"(min {float(var.min()):g}), so its sigma is not a real number; the BatchNorm's "
                      "statistics are corrupt: retrain or reset them (module.reset_running_stats())")  # fmt: skip
    sigma = torch.sqrt(var)
    gamma = mod.weight.detach().to("cpu", F64) if mod.weight is not None else torch.ones_like(sigma)
    beta = mod.bias.detach().to("cpu", F64) if mod.bias is not None else torch.zeros_like(sigma)
    mu = mod.running_mean.detach().to("cpu", F64)
    return x.batch_norm(mu, sigma, gamma, beta, node.target)


_AVG_POOL_ARGS = "input kernel_size stride padding ceil_mode count_include_pad divisor_override"


def _avg_pool(w, node, mod, args, kwargs, out_shape) -> Affine:
    if mod is None:
        p, origin = bind(args, kwargs, _AVG_POOL_ARGS, (None, 0, False, True, None)), None
    else:
        p = {name: getattr(mod, name) for name in _AVG_POOL_ARGS.split()[1:]}
        p["input"], origin = args[0], node.target
    x = p["input"]
    if not isinstance(x, Affine):
        raise refusal(w.gm, node, "is applied to something that is not the network's signal")
    if not p["count_include_pad"] and pair(p["padding"]) != (0, 0):
        raise refusal(
            w.gm,
            node,
            "has count_include_pad=False with padding; use count_include_pad=True (padded zeros count in the mean)",
        )
    if p["divisor_override"] is not None:
        raise refusal(w.gm, node, f"has divisor_override={p['divisor_override']}; remove it")
    stride = p["stride"] if p["stride"] not in (None, [], ()) else p["kernel_size"]
    op = AvgPool2d(pair(p["kernel_size"]), pair(stride), pair(p["padding"]))
    if len(x.shape) != 3:
        raise refusal(w.gm, node, f"is applied to a tensor of shape {x.shape}; it needs (C, H, W)")
    if op.out_shape(x.shape) != tuple(out_shape):  # ceil_mode that adds windows
        raise refusal(
            w.gm, node, "has ceil_mode=True adding partial windows at the border; use ceil_mode=False"
        )
    return x.then(op, origin or x.origin)


def _adaptive_avg_pool(w, node, mod, args, kwargs, out_shape) -> Affine:
    if mod is None:
        p = bind(args, kwargs, "input output_size", ())
        x, output_size, origin = p["input"], p["output_size"], None
    else:
        x, output_size, origin = args[0], mod.output_size, node.target
    if not isinstance(x, Affine) or len(x.shape) != 3:
        raise refusal(w.gm, node, "needs a (C, H, W) tensor")
    _, H, W = x.shape
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    oh, ow = oh or H, ow or W
    if H % oh or W % ow:
        raise refusal(
            w.gm,
            node,
            f"maps {H}x{W} to {oh}x{ow}, which is not an even split, so its windows "
            "differ in size; choose an input size divisible by the output size, or nn.AvgPool2d",
        )
    if (H // oh, W // ow) == (1, 1):
        return x
    return x.then(AvgPool2d((H // oh, W // ow)), origin or x.origin)


def _flatten(w, node, mod, args, kwargs, out_shape) -> Affine:
    x, out_shape = _signal(w, node, args), tuple(out_shape)
    if out_shape == x.shape:
        return x
    if len(out_shape) == 1 and out_shape[0] == math.prod(x.shape):
        return x.then(Flatten(), x.origin)
    raise refusal(w.gm, node, f"reshapes {x.shape} to {out_shape}; only flattening to (N, -1) is supported")


def _add(w, node, mod, args, kwargs, out_shape) -> Affine:
    p = bind(args, kwargs, "input other alpha", (1,))
    a, b, alpha = p["input"], p["other"], p["alpha"]
    if alpha != 1:
        raise refusal(w.gm, node, f"has alpha={alpha}; only plain additions are supported")
    if not isinstance(a, Affine):
        a, b = b, a
    if isinstance(b, numbers.Real) and not isinstance(b, bool):
        return Affine(a.terms, a.bias + float(b), a.origin)
    if not isinstance(b, Affine) or a.shape != b.shape:
        shape_b = b.shape if isinstance(b, Affine) else type(b).__name__
        raise refusal(
            w.gm, node, f"adds {a.shape} and {shape_b}; only additions of equal shapes are supported"
        )
    return Affine(a.terms + b.terms, a.bias + b.bias, a.origin)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
_DROPOUT_MODULES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
_DROPOUT_FUNCTIONS = (
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
)

#: The one rule table, in the order the supported list and the refusal advice are read.
RULES: tuple[Rule, ...] = (
    Rule(modules=(nn.Linear,), handler=_linear),
    Rule(modules=(nn.Conv2d,), handler=_conv2d, note="groups=1, dilation=1"),
    Rule(modules=(nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm), handler=_batch_norm),
    Rule(
        modules=(nn.ReLU,),
        functions=(F.relu, F.relu_, torch.relu, torch.relu_),
        methods=("relu", "relu_"),
        handler=_relu,
        note="or F.relu",
    ),
    Rule(modules=(nn.AvgPool2d,), functions=(F.avg_pool2d,), handler=_avg_pool),
    Rule(
        modules=(nn.AdaptiveAvgPool2d,),
        functions=(F.adaptive_avg_pool2d,),
        handler=_adaptive_avg_pool,
        note="evenly dividing",
    ),
    Rule(
        modules=(nn.Flatten,),
        functions=(torch.flatten, torch.reshape),
        methods=("view", "reshape", "flatten"),
        handler=_flatten,
        note="or view / reshape to (N, -1)",
    ),
    Rule(modules=_DROPOUT_MODULES, functions=_DROPOUT_FUNCTIONS, handler=_identity),
    Rule(modules=(nn.Identity,), methods=("contiguous", "clone", "float", "double"), handler=_identity),
    Rule(
        label="additions of branches (residual blocks)",
        functions=(operator.add, operator.iadd, torch.add),
        methods=("add", "add_", "__add__", "__iadd__"),
        handler=_add,
    ),
    Rule(
        label="max pooling",
        modules=(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d),
        functions=(F.max_pool2d, F.adaptive_max_pool2d),
        prefixes=(
            "maxpool max_pool adaptivemaxpool adaptive_max_pool fractionalmaxpool fractional_max_pool "
            "lppool lp_pool"
        ),
        advice="has no exact SC-TTFS equivalent (the maximum of decoded spikes is not linear); use nn.AvgPool2d, "
        "which is linear and folds into the next weight layer",
    ),
    Rule(
        label="clipping activations",
        modules=(nn.ReLU6, nn.Hardtanh),
        prefixes="relu6 hardtanh",
        advice="clips its output; SC-TTFS neurons quantize max(0, x): use nn.ReLU "
        "(the code's largest value clips anyway)",
    ),
    Rule(
        label="other activations",
        modules=(nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.PReLU),
        prefixes=(
            "gelu silu elu selu celu sigmoid tanh leaky prelu rrelu softplus softsign mish hardswish "
            "hardsigmoid logsigmoid threshold glu swish"
        ),
        advice="is not a ReLU; SC-TTFS neurons quantize max(0, x) only: train the ANN with nn.ReLU",
    ),
    Rule(
        label="per-input normalizations",
        modules=(nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d, nn.LocalResponseNorm),
        prefixes=(
            "layernorm layer_norm groupnorm group_norm instancenorm instance_norm rmsnorm rms_norm "
            "localresponsenorm local_response_norm normalize"
        ),
        advice="depends on each input's own statistics and cannot be folded into weights; use "
        "nn.BatchNorm1d/2d (folded into the preceding layer, eq. 24)",
    ),
    Rule(
        label="softmax",
        modules=(nn.Softmax, nn.LogSoftmax),
        prefixes="softmax log_softmax logsoftmax softmin",
        advice="must be removed before conversion: the prediction is the argmax of the output layer's "
        "potentials, which softmax does not change",
    ),
    Rule(
        label="attention and recurrence",
        modules=(nn.MultiheadAttention, nn.LSTM, nn.GRU, nn.RNN, nn.Embedding),
        prefixes="multihead scaled_dot transformer lstm gru rnn embedding",
        advice="has no SC-TTFS equivalent; convert a feed-forward ReLU network",
    ),
    Rule(
        label="concatenation",
        functions=(torch.cat, torch.stack),
        prefixes="cat concat stack",
        advice="concatenates tensors, which is not supported; only additions of branches (residual blocks) are",
    ),
    Rule(
        label="other convolutions",
        modules=(nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d),
        prefixes="conv1d conv3d convtranspose conv_transpose",
        advice="is not supported; only nn.Conv2d and nn.Linear weight layers are",
    ),
)

#: What the converter supports, one entry per supported rule of :data:`RULES`.
SUPPORTED: tuple[str, ...] = tuple(rule.describe() for rule in RULES if rule.supported)


def supported_text() -> str:
    """:data:`SUPPORTED` as one phrase, for messages."""
    return ", ".join(SUPPORTED[:-1]) + " and " + SUPPORTED[-1]


_BY_FUNCTION = {f: rule for rule in RULES for f in rule.functions}
_BY_METHOD = {m: rule for rule in RULES for m in rule.methods}


def rule_for(node, module: nn.Module | None) -> Rule | None:
    """The rule of a ``call_module`` (with its ``module``), ``call_function`` or ``call_method``
    node; ``None`` when no rule names it."""
    if node.op == "call_module":
        return next((rule for rule in RULES if isinstance(module, rule.modules)), None)
    table = {"call_function": _BY_FUNCTION, "call_method": _BY_METHOD}.get(node.op, {})
    try:
        return table.get(node.target)
    except TypeError:  # an unhashable target
        return None


def refusal(gm: torch.fx.GraphModule, node, reason: str | None = None) -> ValueError:
    """The error for a node the converter cannot express: ``"<where> <reason>"``; without a
    ``reason``, the advice of the refused rule that names the node, else the list of what is
    supported (:func:`supported_text`)."""
    if reason is None:
        rule = _refused_rule(gm, node)
        reason = (
            rule.advice if rule is not None else f"is not supported; the converter knows {supported_text()}"
        )
    return ValueError(f"{describe(gm, node)} {reason}")


def _refused_rule(gm: torch.fx.GraphModule, node) -> Rule | None:
    """The refused rule naming the node by type or function, else by the start of its name."""
    module = gm.get_submodule(node.target) if node.op == "call_module" else None
    rule = rule_for(node, module)
    if rule is not None and not rule.supported:
        return rule
    name = type(module).__name__ if module is not None else function_name(node.target)
    key = name.rpartition(".")[2].lower()
    return next((r for r in RULES if not r.supported and key.startswith(r.prefixes)), None)
