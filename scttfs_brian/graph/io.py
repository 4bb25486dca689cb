"""Graphs on disk: one ``.npz`` file of arrays plus a JSON description, never pickle.

The file holds ``meta`` (UTF-8 JSON as ``uint8``), each layer's bias ``l{i}_bias`` and each
weight ``l{i}_p{j}_o{k}`` (layer ``i``, projection ``j``, operation ``k``). ``meta`` is::

    {"format": "scttfs-graph/1", "input_shape": [...], "input_code": code or null,
     "layers": [{"name", "shape", "code", "inputs": [{"source", "ops": [op, ...]}]}]}

with codes as :meth:`~scttfs_brian.coding.CodeBase.to_dict` writes them and ops as
``{"op": "dense", "weight": key}``, ``{"op": "conv2d", "weight", "stride", "padding"}``,
``{"op": "avgpool2d", "kernel", "stride", "padding"}`` or ``{"op": "flatten"}``.
Reading checks everything and refuses a malformed file with a ``ValueError`` naming the file and
what is wrong.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

import numpy as np

from ..coding import code_from_dict
from .core import Graph, Layer, Projection
from .ops import AvgPool2d, Conv2d, Dense, Flatten

__all__ = ["FORMAT", "save_graph", "load_graph"]

#: The ``format`` written into (and required of) every graph file.
FORMAT = "scttfs-graph/1"


def save_graph(graph: Graph, path: Any) -> None:
    """Write ``graph`` to one ``.npz`` file (``np.savez``: the suffix is added if missing)."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for li, layer in enumerate(graph.layers):
        arrays[f"l{li}_bias"] = layer.bias
        projs = []
        for pi, proj in enumerate(layer.inputs):
            ops = []
            for oi, op in enumerate(proj.ops):
                key = f"l{li}_p{pi}_o{oi}"
                d, weight = _op_dict(op, key)
                if weight is not None:
                    arrays[key] = weight
                ops.append(d)
            projs.append({"source": proj.source, "ops": ops})
        layers.append(
            {"name": layer.name, "shape": layer.shape, "inputs": projs, "code": _code_dict(layer.code)}
        )
    meta = {
        "format": FORMAT,
        "input_shape": graph.input_shape,
        "input_code": _code_dict(graph.input_code),
        "layers": layers,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def load_graph(path: Any) -> Graph:
    """Read a graph written by :func:`save_graph`.

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ValueError
        When the file is not a graph file (not an ``.npz``, no ``meta``, another format) or its
        content is invalid (a missing key or array, an unknown operation or code, a bad operation
        parameter such as stride 0, shapes that do not fit); the message names the file.
    """
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz graph file ({type(err).__name__}: {err})") from err
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array, not a saved graph (.npz with 'meta')")
    with f:
        try:
            return _read(f, path)
        except (LookupError, TypeError, ValueError, AttributeError, zipfile.BadZipFile, EOFError) as err:
            what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"{path} is not a valid saved graph: {what}") from err


def _read(f: np.lib.npyio.NpzFile, path: Any) -> Graph:
    if "meta" not in f.files:
        raise ValueError(f"no 'meta' entry (found {sorted(f.files)[:8]}); was it written by Graph.save?")
    try:
        meta = json.loads(f["meta"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"its 'meta' entry is not JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"format {got!r}, expected {FORMAT!r}")
    layers = []
    for li, ld in enumerate(meta["layers"]):
        where = f"layer {li} ({ld.get('name')!r})" if isinstance(ld, dict) else f"layer {li}"
        projs = [
            Projection(pd["source"], tuple(_op(od, f, where) for od in pd["ops"])) for pd in ld["inputs"]
        ]
        code = _code(ld["code"], f"{path}, {where}")
        layers.append(Layer(ld["name"], tuple(ld["shape"]), projs, _array(f, f"l{li}_bias"), code))
    input_code = _code(meta["input_code"], f"{path}, input_code")
    return Graph(tuple(meta["input_shape"]), layers, input_code=input_code)


def _code_dict(code) -> dict | None:
    return None if code is None else code.to_dict()


def _code(d, where: str):
    return None if d is None else code_from_dict(d, where)


def _op_dict(op, key: str) -> tuple[dict, np.ndarray | None]:
    """An operation as JSON and its weight array, stored under ``key`` (``None``: no weight)."""
    if isinstance(op, Dense):
        return {"op": "dense", "weight": key}, op.weight
    if isinstance(op, Conv2d):
        return {"op": "conv2d", "weight": key, "stride": op.stride, "padding": op.padding}, op.weight
    if isinstance(op, AvgPool2d):
        return {"op": "avgpool2d", "kernel": op.kernel, "stride": op.stride, "padding": op.padding}, None
    if isinstance(op, Flatten):
        return {"op": "flatten"}, None
    raise TypeError(f"cannot save a graph operation of type {type(op).__name__}")


def _op(od: dict, f, where: str):
    kind = od["op"]
    if kind == "dense":
        return Dense(_array(f, od["weight"]))
    if kind == "conv2d":
        return Conv2d(_array(f, od["weight"]), od["stride"], od["padding"])
    if kind == "avgpool2d":
        return AvgPool2d(od["kernel"], od["stride"], od["padding"])
    if kind == "flatten":
        return Flatten()
    raise ValueError(
        f"{where} has an unknown operation {kind!r}; expected dense, conv2d, avgpool2d or flatten"
    )


def _array(f, key: str) -> np.ndarray:
    if key not in f.files:
        raise ValueError(f"the array {key!r} is missing")
    a = f[key]
    if a.dtype.kind not in "fiu":
        raise ValueError(f"the array {key!r} has dtype {a.dtype}, expected numbers")
    return a
