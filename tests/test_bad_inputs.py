"""What bad input gets: the table of refusals (and correct acceptances) over every entry point.

Each case is one row: a call with a bad (or borderline but valid) input, and what it must give,
either an exception type and a key phrase of its message (what was wrong, where, what to do) or
acceptance (``ACCEPT``: the call succeeds, and the case may check its result). The areas are
codes, potentials, convert, checkpoints, graph files, CIFAR archives, CLI options, run directories
and Brian2 options; the README's "What bad input gets" section holds the counts, written by
``python tests/test_bad_inputs.py --readme`` and checked by :func:`test_readme_counts`.

No training: networks are built by hand (untrained weights), the run directories too.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from scttfs_brian import SCTTFSCode, ThresholdKernel, TTFSCode, cli, convert
from scttfs_brian.coding import MAX_CODEWORDS, code_from_dict
from scttfs_brian.conversion import code_from_activations, load_state_dict
from scttfs_brian.data import cifar10, cifar100, restricted_loads
from scttfs_brian.graph import Graph
from scttfs_brian.pipeline import Run, rundir
from scttfs_brian.pipeline.errors import RunBusy, StaleArtifact, UsageError

ROOT = Path(__file__).resolve().parents[1]
ACCEPT = None
K = ThresholdKernel(1.0, 0.0, 0.5)
K2 = ThresholdKernel(0.5, -0.5, 0.5)


def _case(*args, id):
    return pytest.param(*args, id=id)


def check(fn, expect, *args):
    """Run ``fn(*args)``; ``expect`` is ACCEPT or ``(exception type, phrase)``."""
    if expect is ACCEPT:
        return fn(*args)
    exc, phrase = expect
    with pytest.raises(exc) as info:
        fn(*args)
    assert phrase in str(info.value), f"{phrase!r} not in {str(info.value)!r}"
    return info.value


# ============================================================================================ codes
def _codebook_len(T, k=0.5):
    kern = ThresholdKernel(1.0, 0.0, k)
    return len(SCTTFSCode(T, kern, kern).codebook())


CODES = [
    _case(lambda: ThresholdKernel(0.0, 0.0, 0.5), (ValueError, "alpha must be > 0"), id="alpha-0"),
    _case(
        lambda: ThresholdKernel(-1.0, 0.0, 0.5), (ValueError, "alpha must be > 0 (got -1.0)"), id="alpha-neg"
    ),
    _case(lambda: ThresholdKernel(math.nan, 0.0, 0.5), (ValueError, "alpha must be finite"), id="alpha-nan"),
    _case(lambda: ThresholdKernel(math.inf, 0.0, 0.5), (ValueError, "alpha must be finite"), id="alpha-inf"),
    _case(lambda: ThresholdKernel("1", 0.0, 0.5), (TypeError, "alpha must be a real number"), id="alpha-str"),
    _case(
        lambda: ThresholdKernel(True, 0.0, 0.5), (TypeError, "alpha must be a real number"), id="alpha-bool"
    ),
    _case(lambda: ThresholdKernel(1.0, 0.0, 0.0), (ValueError, "k must be > 0"), id="k-0"),
    _case(lambda: ThresholdKernel(1.0, 0.0, -0.5), (ValueError, "k must be > 0 (got -0.5)"), id="k-neg"),
    _case(lambda: ThresholdKernel(1.0, 0.0, None), (TypeError, "k must be a real number"), id="k-none"),
    _case(lambda: ThresholdKernel(1.0, math.nan, 0.5), (ValueError, "beta must be finite"), id="beta-nan"),
    _case(lambda: ThresholdKernel(1.0, 1000.0, 0.5), (ValueError, "overflows to inf"), id="beta-1000"),
    _case(
        lambda: SCTTFSCode(3, ThresholdKernel(1.0, 1000.0, 0.5), K),
        (ValueError, "overflows to inf"),
        id="beta-1000-in-code",
    ),  # fmt: skip
    _case(lambda: ThresholdKernel(1.0, 700.0, 0.5).table(2), ACCEPT, id="beta-700-finite"),
    _case(
        lambda: ThresholdKernel(1.0, 0.0, 1.0).table(800),
        (ValueError, "a threshold must be finite and > 0"),
        id="table-underflows",
    ),  # fmt: skip
    _case(lambda: K.table(0), (ValueError, "T must be >= 1"), id="table-T0"),
    _case(lambda: SCTTFSCode(0, K, K), (ValueError, "T must be >= 1 time step"), id="T-0"),
    _case(lambda: SCTTFSCode(-3, K, K), (ValueError, "T must be >= 1 time step"), id="T-neg"),
    _case(
        lambda: SCTTFSCode(2.5, K, K), (TypeError, "T must be an integer number of time steps"), id="T-float"
    ),
    _case(lambda: SCTTFSCode("3", K, K), (TypeError, "T must be an integer"), id="T-str"),
    _case(lambda: SCTTFSCode(True, K, K), (TypeError, "T must be an integer"), id="T-bool"),
    _case(lambda: SCTTFSCode(np.int64(3), K, K), ACCEPT, id="T-numpy-int"),
    _case(lambda: SCTTFSCode(1, K, K).codebook(), ACCEPT, id="T-1"),
    _case(lambda: _codebook_len(10**6, 1e-7), (ValueError, f"limit of {MAX_CODEWORDS}"), id="T-1e6-codebook"),
    _case(lambda: _codebook_len(10**6, 1e-7), (ValueError, "500001500001 codewords"), id="T-1e6-words-named"),
    _case(
        lambda: SCTTFSCode(10**5, ThresholdKernel(1, 0, 1e-6), ThresholdKernel(0.5, 0, 1e-6)).boundaries(
            "float64"
        ),
        (ValueError, "codewords"),
        id="T-1e5-boundaries",
    ),  # fmt: skip
    _case(lambda: TTFSCode(10**5, ThresholdKernel(1, 0, 1e-6)).codebook(), ACCEPT, id="ttfs-T-1e5-codebook"),
    _case(
        lambda: SCTTFSCode(3, K, "kernel"),
        (TypeError, "calibrate must be a ThresholdKernel"),
        id="cal-not-kernel",
    ),
    _case(lambda: TTFSCode(3, (1, 0, 1)), (TypeError, "kernel must be a ThresholdKernel"), id="ttfs-tuple"),
    _case(lambda: TTFSCode(3, K).theta_c(0), (ValueError, "no calibration kernel"), id="ttfs-theta_c"),
    _case(lambda: SCTTFSCode(3, K, K).theta_e(3), (ValueError, "must lie in [0, 2]"), id="theta-step-out"),
    _case(
        lambda: SCTTFSCode(3, K, K).theta_e(0.5),
        (TypeError, "must be an integer step"),
        id="theta-step-float",
    ),
    _case(
        lambda: SCTTFSCode(3, K, K).decode([2], [1]),
        (ValueError, "t_cal must be >= t_enc"),
        id="decode-cal-first",
    ),
    _case(
        lambda: SCTTFSCode(3, K, K).decode([5]), (ValueError, "t_enc must lie in [-1, 2]"), id="decode-out"
    ),
    _case(
        lambda: SCTTFSCode(3, K, K).decode([0.0]),
        (TypeError, "t_enc must be integer spike times"),
        id="decode-float",
    ),  # fmt: skip
    _case(
        lambda: TTFSCode(3, K).decode([0], [1]),
        (ValueError, "a TTFS code has no calibration spikes"),
        id="ttfs-decode-cal",
    ),  # fmt: skip
    _case(
        lambda: code_from_dict({"kind": "bogus", "T": 3, "encode": [1, 0, 1]}, "f.npz"),
        (ValueError, "unknown code kind 'bogus' in f.npz"),
        id="dict-bogus-kind",
    ),  # fmt: skip
    _case(
        lambda: code_from_dict({"T": 3, "encode": [1, 0, 1]}),
        (ValueError, "unknown code kind None"),
        id="dict-no-kind",
    ),  # fmt: skip
    _case(
        lambda: code_from_dict({"kind": "sc-ttfs", "T": 3, "encode": [1, 0, 1]}),
        (ValueError, "has the keys"),
        id="dict-missing-calibrate",
    ),  # fmt: skip
    _case(
        lambda: code_from_dict({"kind": "ttfs", "T": 3, "encode": [1, 0]}),
        (ValueError, "must be [alpha, beta, k]"),
        id="dict-short-kernel",
    ),  # fmt: skip
    _case(
        lambda: code_from_dict({"kind": "ttfs", "T": 0, "encode": [1, 0, 1]}),
        (ValueError, "T must be >= 1"),
        id="dict-T0",
    ),  # fmt: skip
    _case(lambda: code_from_dict([1, 2]), (ValueError, "a code must be a JSON object"), id="dict-list"),
    _case(
        lambda: code_from_dict(SCTTFSCode(4, K, K2).to_dict()) == SCTTFSCode(4, K, K2),
        ACCEPT,
        id="dict-roundtrip",
    ),
]


@pytest.mark.parametrize("fn, expect", CODES)
def test_codes(fn, expect):
    check(fn, expect)


# ======================================================================================= potentials
SC = SCTTFSCode(3, K, K2)

POTENTIALS = [
    _case(
        lambda: SC.quantize(np.array([1.0, np.nan])),
        (ValueError, "must be finite (got nan at flat index 1)"),
        id="nan",
    ),  # fmt: skip
    _case(lambda: SC.quantize(np.array([np.inf])), (ValueError, "remove NaN/inf potentials"), id="inf"),
    _case(lambda: SC.quantize(np.array([-np.inf])), (ValueError, "must be finite"), id="minus-inf"),
    _case(
        lambda: SC.quantize(torch.tensor([0.5, float("nan")])), (ValueError, "must be finite"), id="torch-nan"
    ),
    _case(lambda: SC.quantize(np.array([1 + 2j])), (TypeError, "must hold real numbers"), id="complex"),
    _case(
        lambda: SC.quantize(torch.tensor([1 + 2j])),
        (TypeError, "must be a real float tensor"),
        id="torch-complex",
    ),
    _case(
        lambda: SC.quantize("0.5"), (TypeError, "must be a number, a numpy array or a torch tensor"), id="str"
    ),
    _case(lambda: SC.quantize(None), (TypeError, "got NoneType"), id="none"),
    _case(lambda: SC.quantize(np.array(["a"])), (TypeError, "must hold real numbers"), id="str-array"),
    _case(lambda: SC.quantize(np.array([object()])), (TypeError, "dtype object"), id="object-array"),
    _case(lambda: SC.quantize(np.array([True])), (TypeError, "must hold real numbers"), id="bool-array"),
    _case(lambda: SC.spike_times(torch.tensor([True])), (TypeError, "real float tensor"), id="torch-bool"),
    _case(
        lambda: SC.quantize(np.array([-5.0, 0.0])).tolist() == [0.0, 0.0],
        ACCEPT,
        id="negative-and-zero-silent",
    ),
    _case(lambda: SC.quantize(np.array([1e300]))[0] == SC.max_value, ACCEPT, id="huge-clipped-to-max"),
    _case(lambda: SC.quantize(np.float32([0.7])).dtype == np.float32, ACCEPT, id="float32-kept"),
    _case(lambda: SC.quantize(np.array([1, 2])), ACCEPT, id="int-array-converted"),
    _case(lambda: SC.quantize(torch.tensor([0.3], dtype=torch.float64)), ACCEPT, id="torch-float64"),
    _case(lambda: SC.quantize(np.zeros((0, 3))), ACCEPT, id="empty-array"),
    _case(lambda: SC.quantize(0.75), ACCEPT, id="python-float"),
]


@pytest.mark.parametrize("fn, expect", POTENTIALS)
def test_potentials(fn, expect):
    result = check(fn, expect)
    if expect is ACCEPT and isinstance(result, bool):
        assert result


# ========================================================================================== convert
def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()


def _cnn(**bn):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, **bn), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)
    )
    return net.eval()


def _bn_var(value):
    net = _cnn()
    with torch.no_grad():
        net[1].running_var[1] = value
    return net


X8 = torch.rand(16, 1, 8, 8)
CODES_MLP = {"2": SCTTFSCode(3, K, K2)}

CONVERT = [
    _case(
        lambda: convert(
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU()).eval(),
            (1, 8, 8),
            code=SCTTFSCode(3, K, K2),
        ),
        (ValueError, "AvgPool"),
        id="maxpool",
    ),  # fmt: skip
    _case(
        lambda: convert(nn.Sequential(nn.Linear(4, 4), nn.GELU()).eval(), (4,), code=SCTTFSCode(3, K, K2)),
        (ValueError, "GELU"),
        id="gelu",
    ),  # fmt: skip
    _case(lambda: convert(_mlp(), (1, 8, 8), T=3), (ValueError, "needs calibration_data"), id="auto-no-data"),
    _case(
        lambda: convert(_mlp(), (1, 8, 8), calibration_data=X8),
        (ValueError, "needs calibration_data (a batch of inputs) and T"),
        id="auto-no-T",
    ),  # fmt: skip
    _case(
        lambda: convert(_mlp(), (1, 8, 8), T=3, calibration_data=torch.zeros(0, 1, 8, 8)),
        (ValueError, "calibration_data holds no samples"),
        id="calibration-empty",
    ),  # fmt: skip
    _case(
        lambda: convert(_mlp(), (1, 8, 8), T=3, calibration_data=torch.zeros(8, 1, 8, 8)),
        (ValueError, "calibration_data is all zeros"),
        id="calibration-all-zero",
    ),  # fmt: skip
    _case(
        lambda: code_from_activations(np.zeros(50), 3),
        (ValueError, "all 50 activations are <= 0"),
        id="acts-all-zero",
    ),
    _case(
        lambda: code_from_activations(-np.ones(5), 3), (ValueError, "cannot be fitted"), id="acts-negative"
    ),
    _case(
        lambda: code_from_activations(np.zeros(0), 3),
        (ValueError, "the calibration data holds no samples"),
        id="acts-empty",
    ),  # fmt: skip
    _case(
        lambda: code_from_activations(np.array([1.0, np.nan]), 3), (ValueError, "non-finite"), id="acts-nan"
    ),
    _case(
        lambda: code_from_activations(np.ones(5), 3, kind="bogus"),
        (ValueError, "kind must be 'sc-ttfs' or 'ttfs'"),
        id="acts-kind",
    ),  # fmt: skip
    _case(
        lambda: code_from_activations(np.ones(5), 0),
        (ValueError, "T must be a positive integer"),
        id="acts-T0",
    ),
    _case(
        lambda: convert(_bn_var(-5.0), (1, 8, 8), code=SCTTFSCode(3, K, K2)),
        (ValueError, "BatchNorm2d at '1' has running_var + eps <= 0"),
        id="bn-var-negative",
    ),  # fmt: skip
    _case(
        lambda: convert(_bn_var(float("nan")), (1, 8, 8), code=SCTTFSCode(3, K, K2)),
        (ValueError, "'1.running_var' of BatchNorm2d '1'"),
        id="bn-var-nan",
    ),  # fmt: skip
    _case(
        lambda: convert(_bn_var(0.0), (1, 8, 8), code=SCTTFSCode(3, K, K2)), ACCEPT, id="bn-var-0-plus-eps"
    ),
    _case(
        lambda: convert(_cnn(track_running_stats=False), (1, 8, 8), code=SCTTFSCode(3, K, K2)),
        (ValueError, "track_running_stats"),
        id="bn-no-running-stats",
    ),  # fmt: skip
    _case(
        lambda: convert("model", (1, 8, 8), code=SCTTFSCode(3, K, K2)),
        (TypeError, "nn.Module"),
        id="not-a-module",
    ),
    _case(
        lambda: convert(_mlp(), (1, 8, 8), T=3, calibration_data=X8, kind="bogus"),
        (ValueError, "kind must be 'sc-ttfs' or 'ttfs'"),
        id="kind-bogus",
    ),  # fmt: skip
    _case(lambda: convert(_mlp(), (1, 8, 8), code=CODES_MLP), ACCEPT, id="codes-by-layer"),
    _case(
        lambda: convert(_mlp(), (1, 8, 8), code={"nope": SCTTFSCode(3, K, K2)}),
        (ValueError, "nope"),
        id="codes-unknown-layer",
    ),  # fmt: skip
    _case(lambda: convert(_mlp(), (1, 8, 8), T=3, calibration_data=X8), ACCEPT, id="auto-accepted"),
]


@pytest.mark.parametrize("fn, expect", CONVERT)
def test_convert(fn, expect):
    check(fn, expect)


# ====================================================================================== checkpoints
class _System:
    """Unpickles as ``os.system(command)``: what a tampered file would run."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _write_checkpoint(path: Path, kind: str) -> Path:
    net = nn.Linear(2, 2)
    if kind == "malicious":
        torch.save({"weight": _System(f"touch {path.parent / 'pwned'}")}, path)
    elif kind == "truncated":
        torch.save(net.state_dict(), path)
        path.write_bytes(path.read_bytes()[:60])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("weights\n")
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    elif kind == "tensor":
        torch.save(torch.zeros(2), path)
    elif kind == "other-keys":
        torch.save(nn.Linear(3, 2).state_dict(), path)
    elif kind == "other-shapes":
        torch.save({"weight": torch.zeros(3, 2), "bias": torch.zeros(3)}, path)
    elif kind == "missing-key":
        torch.save({"weight": torch.zeros(2, 2)}, path)
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, weight=np.zeros((2, 2)))
    elif kind == "module-prefix":
        torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    elif kind == "wrapped":
        torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)
    elif kind == "plain":
        torch.save(net.state_dict(), path)
    return path


CHECKPOINTS = [
    _case("missing", (FileNotFoundError, ""), id="missing"),
    _case("malicious", (ValueError, "unsupported GLOBAL posix.system"), id="malicious"),
    _case("truncated", (ValueError, "it is truncated or holds pickled objects"), id="truncated"),
    _case("empty", (ValueError, "could not be read as a state_dict"), id="empty"),
    _case("text", (ValueError, "could not be read as a state_dict"), id="text"),
    _case("npz", (ValueError, "could not be read as a state_dict"), id="npz"),
    _case("list", (ValueError, "holds a list, not a state_dict"), id="list"),
    _case("tensor", (ValueError, "holds a Tensor, not a state_dict"), id="tensor"),
    _case("other-keys", (ValueError, "does not match Linear"), id="other-model"),
    _case("other-shapes", (ValueError, "size mismatch"), id="other-shapes"),
    _case("missing-key", (ValueError, "Missing key(s)"), id="missing-key"),
    _case("module-prefix", ACCEPT, id="dataparallel-prefix"),
    _case("wrapped", ACCEPT, id="wrapped-state_dict"),
    _case("plain", ACCEPT, id="plain"),
]


@pytest.mark.parametrize("kind, expect", CHECKPOINTS)
def test_checkpoints(kind, expect, tmp_path):
    path = tmp_path / "ann.pt" if kind == "missing" else _write_checkpoint(tmp_path / "ann.pt", kind)
    err = check(load_state_dict, expect, nn.Linear(2, 2), path)
    if expect is not ACCEPT and kind != "missing":
        assert str(path) in str(err)
    assert not (tmp_path / "pwned").exists()


# ====================================================================================== graph files
def _graph_file(tmp_path: Path) -> Path:
    snn = convert(_cnn(), (1, 8, 8), code=SCTTFSCode(3, K, K2))
    path = tmp_path / "snn.npz"
    snn.save(path)
    return path


def _edit_meta(path: Path, change) -> Path:
    with np.load(path) as f:
        arrays = dict(f)
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    return path


def _ops(meta, op):
    return [od for layer in meta["layers"] for p in layer["inputs"] for od in p["ops"] if od["op"] == op]


def _set(d, key, value):
    d[key] = value


def _drop_array(path: Path, key_prefix: str) -> Path:
    with np.load(path) as f:
        arrays = {k: v for k, v in f.items() if not k.startswith(key_prefix)}
    np.savez(path, **arrays)
    return path


GRAPH_EDITS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("not a graph"),
    "single-array": lambda p: np.save(open(p, "wb"), np.zeros(3)),
    "no-meta": lambda p: np.savez(p, x=np.zeros(2)),
    "meta-not-json": lambda p: np.savez(p, meta=np.frombuffer(b"{oops", np.uint8)),
    "meta-a-list": lambda p: np.savez(p, meta=np.frombuffer(b"[1, 2]", np.uint8)),
    "other-format": lambda p: _edit_meta(p, lambda m: _set(m, "format", "scttfs-graph/99")),
    "bogus-kind": lambda p: _edit_meta(p, lambda m: _set(m["layers"][0]["code"], "kind", "bogus")),
    "code-T0": lambda p: _edit_meta(p, lambda m: _set(m["layers"][0]["code"], "T", 0)),
    "code-alpha-neg": lambda p: _edit_meta(p, lambda m: _set(m["layers"][0]["code"], "encode", [-1, 0, 1])),
    "bogus-input-code": lambda p: _edit_meta(p, lambda m: _set(m, "input_code", {"kind": "bogus"})),
    "stride-0": lambda p: _edit_meta(p, lambda m: [_set(od, "stride", [0, 0]) for od in _ops(m, "conv2d")]),
    "unknown-op": lambda p: _edit_meta(p, lambda m: [_set(od, "op", "maxpool") for od in _ops(m, "flatten")]),
    "no-layers-key": lambda p: _edit_meta(p, lambda m: m.pop("layers")),
    "missing-weight": lambda p: _drop_array(p, "l0_p0_o0"),
    "missing-bias": lambda p: _drop_array(p, "l0_bias"),
    "zip-of-junk": lambda p: zipfile.ZipFile(p, "w").writestr("meta.npy", b"junk"),
}
GRAPH_FILES = [
    _case("missing", (FileNotFoundError, ""), id="missing"),
    _case("truncated", (ValueError, "is not a readable .npz graph file"), id="truncated"),
    _case("empty", (ValueError, "not a readable .npz graph file"), id="empty"),
    _case("text", (ValueError, "not a readable .npz graph file"), id="text"),
    _case("single-array", (ValueError, "single array"), id="npy-not-npz"),
    _case("no-meta", (ValueError, "no 'meta' entry"), id="no-meta"),
    _case("meta-not-json", (ValueError, "'meta' entry is not JSON"), id="meta-not-json"),
    _case("meta-a-list", (ValueError, "format 'list'"), id="meta-a-list"),
    _case("other-format", (ValueError, "format 'scttfs-graph/99'"), id="other-format"),
    _case("bogus-kind", (ValueError, "unknown code kind 'bogus'"), id="code-kind-bogus"),
    _case("code-T0", (ValueError, "T must be >= 1"), id="code-T0"),
    _case("code-alpha-neg", (ValueError, "alpha must be > 0"), id="code-alpha-negative"),
    _case("bogus-input-code", (ValueError, "input_code"), id="input-code-bogus"),
    _case("stride-0", (ValueError, "stride must be >= 1"), id="stride-0"),
    _case("unknown-op", (ValueError, "unknown operation 'maxpool'"), id="unknown-op"),
    _case("no-layers-key", (ValueError, "missing key 'layers'"), id="no-layers"),
    _case("missing-weight", (ValueError, "'l0_p0_o0' is missing"), id="missing-weight"),
    _case("missing-bias", (ValueError, "'l0_bias' is missing"), id="missing-bias"),
    _case("zip-of-junk", (ValueError, "graph"), id="zip-of-junk"),
    _case(None, ACCEPT, id="roundtrip"),
]


@pytest.mark.parametrize("edit, expect", GRAPH_FILES)
def test_graph_files(edit, expect, tmp_path):
    path = tmp_path / "snn.npz" if edit == "missing" else _graph_file(tmp_path)
    if edit not in (None, "missing"):
        GRAPH_EDITS[edit](path)
    err = check(Graph.load, expect, path)
    if expect is not ACCEPT and edit != "missing":
        assert str(path) in str(err)  # the file is named


# =================================================================================== CIFAR archives
def _cifar_files(n_train=2, n_test=3, labels=None):
    rng = np.random.default_rng(0)

    def batch(n):
        return {"batch_label": "b", "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "labels": rng.integers(0, 10, n).tolist(), "filenames": [f"{i}.png" for i in range(n)]}  # fmt: skip

    files = {f"data_batch_{i}": batch(n_train) for i in range(1, 6)}
    files["test_batch"] = batch(n_test)
    files["batches.meta"] = {"label_names": [f"c{i}" for i in range(10)]}
    return files


def _write_cifar(root: Path, files: dict, *, as_tar=False, protocol=2, raw: dict | None = None) -> Path:
    blobs = {name: pickle.dumps(obj, protocol=protocol) for name, obj in files.items()}
    blobs.update(raw or {})
    if as_tar:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (root / "cifar-10-batches-py").mkdir()
        for name, blob in blobs.items():
            (root / "cifar-10-batches-py" / name).write_bytes(blob)
    return root


def _with(name, **change):
    files = _cifar_files()
    files[name] = dict(files[name], **change)
    return files


class _ObjectScalar:
    """Unpickles as ``numpy.core.multiarray.scalar(dtype(object), obj)``: an arbitrary object."""

    def __reduce__(self):
        scalar = np.float64(0).__reduce__()[0]  # numpy's own pickling function
        return (scalar, (np.dtype(object), "an object"))


def _cifar_case(kind: str, root: Path):
    """Write the archive of case ``kind`` under ``root``."""
    marker = root / "pwned"
    if kind == "missing":
        return
    if kind == "missing-member":
        files = _cifar_files()
        del files["data_batch_3"]
        return _write_cifar(root, files)
    if kind == "tar-missing-member":
        files = _cifar_files()
        del files["test_batch"]
        return _write_cifar(root, files, as_tar=True)
    if kind == "tar-truncated":
        _write_cifar(root, _cifar_files(), as_tar=True)
        tar = root / "cifar-10-python.tar.gz"
        return tar.write_bytes(tar.read_bytes()[:300])
    if kind == "tar-not-gzip":
        return (root / "cifar-10-python.tar.gz").write_bytes(b"this is not an archive" * 10)
    if kind == "pickle-truncated":
        files = _cifar_files()
        return _write_cifar(root, files, raw={"test_batch": pickle.dumps(files["test_batch"])[:200]})
    if kind == "pickle-empty":
        return _write_cifar(root, _cifar_files(), raw={"test_batch": b""})
    if kind == "os-system":
        return _write_cifar(root, _with("test_batch", batch_label=_System(f"touch {marker}")))
    if kind == "os-system-tar":
        return _write_cifar(root, _with("test_batch", batch_label=_System(f"touch {marker}")), as_tar=True)
    if kind == "eval":
        return _write_cifar(root, _cifar_files(), raw={"test_batch": b"cbuiltins\neval\n(S'1+1'\ntR."})
    if kind == "codecs-zlib":
        return _write_cifar(
            root, _cifar_files(), raw={"test_batch": b"c_codecs\nencode\n(S'x'\nS'zlib'\ntR."}
        )
    if kind == "object-scalar":
        return _write_cifar(root, _with("test_batch", batch_label=_ObjectScalar()))
    if kind == "labels-0.7":
        return _write_cifar(root, _with("test_batch", labels=[0.7, 1, 2]))
    if kind == "labels-11":
        return _write_cifar(root, _with("test_batch", labels=[11, 1, 2]))
    if kind == "labels-negative":
        return _write_cifar(root, _with("data_batch_2", labels=[-1, 1]))
    if kind == "labels-strings":
        return _write_cifar(root, _with("test_batch", labels=["cat", "dog", "cat"]))
    if kind == "labels-count":
        return _write_cifar(root, _with("test_batch", labels=[1, 2]))
    if kind == "data-float":
        return _write_cifar(root, _with("test_batch", data=np.zeros((3, 3072), np.float32)))
    if kind == "data-shape":
        return _write_cifar(root, _with("test_batch", data=np.zeros((3, 1024), np.uint8)))
    if kind == "no-data-key":
        files = _cifar_files()
        del files["test_batch"]["data"]
        return _write_cifar(root, files)
    if kind == "batch-a-list":
        files = _cifar_files()
        files["test_batch"] = [1, 2, 3]
        return _write_cifar(root, files)
    if kind == "meta-a-string":
        files = _cifar_files()
        files["batches.meta"] = "labels"
        return _write_cifar(root, files)
    if kind == "numpy-int-labels-p2":
        return _write_cifar(root, _with("test_batch", labels=[np.int64(v) for v in (1, 2, 3)]))
    if kind == "numpy-int-labels-p5":
        return _write_cifar(root, _with("test_batch", labels=np.array([1, 2, 3])), protocol=5)
    if kind == "protocol-4-tar":
        return _write_cifar(root, _cifar_files(), as_tar=True, protocol=4)
    if kind == "int-valued-float-labels":
        return _write_cifar(root, _with("test_batch", labels=[1.0, 2.0, 3.0]))
    raise AssertionError(kind)


CIFAR = [
    _case("missing", (FileNotFoundError, "Download cifar-10-python.tar.gz"), id="missing"),
    _case("missing-member", (FileNotFoundError, "data_batch_3 is missing"), id="missing-member"),
    _case(
        "tar-missing-member",
        (FileNotFoundError, "lacks cifar-10-batches-py/test_batch"),
        id="tar-missing-member",
    ),
    _case("tar-truncated", (ValueError, "is not a readable tar archive"), id="tar-truncated"),
    _case("tar-not-gzip", (ValueError, "is not a readable tar archive"), id="tar-not-an-archive"),
    _case("pickle-truncated", (ValueError, "test_batch is not a readable pickle"), id="pickle-truncated"),
    _case("pickle-empty", (ValueError, "test_batch is not a readable pickle"), id="pickle-empty"),
    _case(
        "os-system", (pickle.UnpicklingError, "refusing to load global posix.system"), id="payload-os-system"
    ),
    _case("os-system-tar", (pickle.UnpicklingError, "refusing to load global"), id="payload-in-tar"),
    _case("eval", (pickle.UnpicklingError, "refusing to load global builtins.eval"), id="payload-eval"),
    _case("codecs-zlib", (pickle.UnpicklingError, "only latin-1"), id="codecs-not-latin1"),
    _case("object-scalar", (pickle.UnpicklingError, "only plain numbers"), id="object-scalar"),
    _case(
        "labels-0.7",
        (ValueError, "must be integer class indices (got dtype float64, e.g. 0.7)"),
        id="labels-0.7",
    ),
    _case(
        "int-valued-float-labels", (ValueError, "must be integer class indices"), id="labels-float-integral"
    ),
    _case("labels-11", (ValueError, "must lie in [0, 10) (got 1..11)"), id="labels-out-of-range"),
    _case(
        "labels-negative", (ValueError, "data_batch_2: 'labels' must lie in [0, 10)"), id="labels-negative"
    ),
    _case("labels-strings", (ValueError, "must be integer class indices"), id="labels-strings"),
    _case("labels-count", (ValueError, "3 images but (2,) 'labels'"), id="labels-count"),
    _case("data-float", (ValueError, "'data' must be uint8 of shape (N, 3072)"), id="data-float"),
    _case("data-shape", (ValueError, "(got uint8 (3, 1024))"), id="data-shape"),
    _case("no-data-key", (ValueError, "has no key 'data'"), id="no-data-key"),
    _case("batch-a-list", (ValueError, "holds a list, not a dict"), id="batch-a-list"),
    _case("meta-a-string", (ValueError, "holds a str, not a dict"), id="meta-a-string"),
    _case("numpy-int-labels-p2", ACCEPT, id="python3-protocol-2-numpy-int-labels"),
    _case("numpy-int-labels-p5", ACCEPT, id="python3-protocol-5-array-labels"),
    _case("protocol-4-tar", ACCEPT, id="python3-protocol-4-tar"),
]


@pytest.mark.parametrize("kind, expect", CIFAR)
def test_cifar_archives(kind, expect, tmp_path):
    _cifar_case(kind, tmp_path)
    result = check(cifar10, expect, tmp_path)
    assert not (tmp_path / "pwned").exists()  # no payload ran
    if expect is ACCEPT:
        assert (
            result.x_train.shape == (10, 3, 32, 32)
            and result.y_test.tolist() == [1, 2, 3]
            or kind == "protocol-4-tar"
        )


def test_cifar100_repickled_coarse_labels_accepted(tmp_path):
    rng = np.random.default_rng(1)
    batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "fine_labels": [np.int64(5), 99],
             "coarse_labels": [np.int64(3), 19]}  # fmt: skip
    meta = {
        "fine_label_names": [str(i) for i in range(100)],
        "coarse_label_names": [str(i) for i in range(20)],
    }
    (tmp_path / "cifar-100-python").mkdir()
    for name, obj in {"train": batch, "test": batch, "meta": meta}.items():
        (tmp_path / "cifar-100-python" / name).write_bytes(pickle.dumps(obj, protocol=2))
    assert cifar100(tmp_path, label="coarse").y_test.tolist() == [3, 19]
    assert restricted_loads(pickle.dumps({"x": np.int32(4)}, protocol=5))["x"] == 4


# ====================================================================================== CLI options
def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


CLI_OPTIONS = [
    _case([], "required: command", id="no-command"),
    _case(["fly"], "invalid choice: 'fly'", id="unknown-command"),
    _case(["demo", "--T", "0"], "expected a positive integer, got 0", id="T-0"),
    _case(["demo", "--T", "-2"], "expected a positive integer, got -2", id="T-negative"),
    _case(["demo", "--T", "2.5"], "expected a positive integer, got '2.5'", id="T-float"),
    _case(["demo", "--T", "abc"], "expected a positive integer, got 'abc'", id="T-text"),
    _case(["demo", "--epochs", "0"], "expected a positive integer", id="epochs-0"),
    _case(["demo", "--images", "0"], "expected a positive integer", id="images-0"),
    _case(["demo", "--copies", "-1"], "expected a positive integer", id="copies-negative"),
    _case(["demo", "--sweep"], "expected at least one argument", id="sweep-empty"),
    _case(["demo", "--sweep", "2", "0"], "expected a positive integer, got 0", id="sweep-0"),
    _case(["demo", "--fine-tune-lr", "abc"], "expected a positive number", id="lr-text"),
    _case(["demo", "--fine-tune-lr", "0"], "expected a positive finite number", id="lr-0"),
    _case(["demo", "--fine-tune-lr", "inf"], "expected a positive finite number", id="lr-inf"),
    _case(["demo", "--fine-tune-lr", "nan"], "expected a positive finite number", id="lr-nan"),
    _case(
        ["demo", "--fine-tune-kernel-lr=-1e-3"], "expected a positive finite number", id="kernel-lr-negative"
    ),
    _case(["demo", "--target", "gpu"], "invalid choice: 'gpu'", id="target-unknown"),
    _case(["demo", "--seed", "x"], "invalid int value: 'x'", id="seed-text"),
    _case(
        ["demo", "--fine-tune-sweep", "4", "--sweep", "2", "3"],
        "fine-tuning windows [4] are not in the sweep [2, 3]",
        id="fine-tune-sweep-not-in-sweep",
    ),  # fmt: skip
    _case(
        ["demo", "--target", "cuda_standalone"],
        "--target cuda_standalone cannot run here",
        id="demo-cuda-without-brian2cuda",
    ),  # fmt: skip
    _case(["demo", "--threads", "0"], "expected a positive integer", id="threads-0"),
    _case(["demo", "--bogus-option"], "unrecognized arguments: --bogus-option", id="unknown-option"),
    _case(["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'", id="optimizer"),
    _case(["train", "--dataset", "mnist"], "invalid choice: 'mnist'", id="dataset"),
    _case(["train", "--model", "resnet50"], "invalid choice: 'resnet50'", id="model"),
    _case(["train", "--lr", "0"], "expected a positive finite number", id="train-lr-0"),
    _case(["train", "--batch-size", "0"], "expected a positive integer", id="batch-size-0"),
    _case(["train", "--weight-decay", "lots"], "invalid float value: 'lots'", id="weight-decay-text"),
    _case(["convert", "--kind", "rate"], "invalid choice: 'rate'", id="kind"),
    _case(
        ["convert", "--fine-tune-epochs", "-1"],
        "expected an integer >= 0, got -1",
        id="fine-tune-epochs-negative",
    ),
    _case(["convert", "--calibration-images", "0"], "expected a positive integer", id="calibration-images-0"),
    _case(["simulate", "--backend", "nest"], "invalid choice: 'nest'", id="backend"),
    _case(["simulate", "--kind", "both"], "invalid choice: 'both'", id="simulate-kind-both"),
    _case(
        ["simulate", "--target", "cuda_standalone"],
        "--target cuda_standalone cannot run here",
        id="simulate-cuda-without-brian2cuda",
    ),  # fmt: skip
]


@pytest.mark.parametrize("argv, phrase", CLI_OPTIONS)
def test_cli_options(argv, phrase, tmp_path, capsys):
    if "cuda_standalone" in argv:
        from scttfs_brian.brian.devices import cuda_available

        if cuda_available()[0]:
            pytest.skip("brian2cuda works here: --target cuda_standalone is valid")
    run_dir = tmp_path / "run"
    extra = (
        ["--run-dir", run_dir]
        if argv and argv[0] in cli.COMMAND_NAMES and "--bogus-option" not in argv
        else []
    )
    code, err = _cli([*argv, *extra], capsys)
    assert code == 2 and phrase in err and "Traceback" not in err, err
    assert not run_dir.exists()  # refused before anything was written


# ================================================================================== run directories
TRAIN_CFG = {"dataset": "digits", "data_root": None, "model": "digits-mlp", "model_kwargs": {}, "epochs": 1,
             "lr": 0.01, "optimizer": "adam", "batch_size": 64, "weight_decay": 0.0, "seed": 0}  # fmt: skip
TRAIN_ARGV = ["train", "--model", "digits-mlp", "--epochs", "1", "--no-progress"]


def _hand_trained(run_dir: Path, seed: int = 0, weight_seed: int | None = None, lr: float = 0.01) -> Path:
    """A run directory as `scttfs train` leaves it, with untrained weights (no training)."""
    from scttfs_brian.pipeline.stages import TRAIN_SETTINGS, build_ann

    cfg = dict(TRAIN_CFG, seed=seed, lr=lr)
    with Run(run_dir, resume=False, progress=False, command="train") as run:
        run.store_config(cfg)
        ann = build_ann("digits-mlp", 10, {}, seed if weight_seed is None else weight_seed, 1)
        run.stage("ann", ["ann.pt"], lambda: run.save_torch("ann.pt", ann.state_dict()),
                  settings={k: cfg[k] for k in TRAIN_SETTINGS})  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A hand-trained run converted by `scttfs convert --T 3` (read only: tests copy it)."""
    run_dir = _hand_trained(tmp_path_factory.mktemp("bad") / "run")
    assert cli.main(["convert", "--run-dir", str(run_dir), "--T", "3", "--no-progress"]) == 0
    return run_dir


def _holder(run_dir: Path):
    """Another process holding the run directory's lock (as a running `scttfs demo` would)."""
    code = ("import sys, time; from scttfs_brian.pipeline import Run; "
            "r = Run(sys.argv[1], resume=False, progress=False, command='demo', "
            "command_line='scttfs demo --run-dir ' + sys.argv[1]); print('locked', flush=True); time.sleep(120)")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _rd(setup, argv, code, phrase):
    return (setup, argv, code, phrase)


def _write(name, data):
    def setup(d):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)

    return setup


def _malicious(name):
    def setup(d):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": 1, "x": _System(f"touch {d / 'pwned'}")}, d / name)

    return setup


def _truncate(name):
    def setup(d):
        (d / name).write_bytes((d / name).read_bytes()[:100])

    return setup


def _graph_edit(edit):
    return lambda d: GRAPH_EDITS[edit](d / "snn-sc-ttfs-T3.npz")


def _retrain(d):  # `scttfs train --seed 1` in the same directory: another ann.pt
    _hand_trained(d, seed=1)


def _retrain_lr(d):  # `scttfs train --lr 0.02`: another ann.pt, the same seed
    _hand_trained(d, weight_seed=1, lr=0.02)


def _made_by_demo(d):  # the demo made codes-sc-ttfs-T3.json with other settings
    records = json.loads((d / "provenance.json").read_text())
    records["codes-sc-ttfs-T3.json"].update(command="demo", settings={"T": 3, "calibration_images": 128})
    records["codes-sc-ttfs-T3.json"]["key"] = "other"
    (d / "provenance.json").write_text(json.dumps(records))


def _config(obj):
    return lambda d: (d / "config.json").write_text(json.dumps(obj))


def _disk_full(monkeypatch):
    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rundir, "atomic_write", full)


def _read_only(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)


def _bug(monkeypatch):
    from scttfs_brian.pipeline import commands

    monkeypatch.setattr(commands, "convert_networks", lambda *a, **k: 1 / 0)


CONVERT3 = ["convert", "--T", "3", "--no-progress"]
CIFAR_TRAIN = ["train", "--dataset", "cifar10", "--epochs", "1", "--no-progress"]
SIM3 = ["simulate", "--T", "3", "--backend", "torch", "--images", "8", "--no-progress"]

#: (setup of a converted run directory, argv, exit code, phrase); setup "fresh": an empty tmp dir.
RUN_DIRS = {
    "is-a-file": _rd("file", TRAIN_ARGV, 2, "is a file (or lies under one), not a directory"),
    "under-a-file": _rd("under-file", TRAIN_ARGV, 2, "is a file (or lies under one)"),
    "read-only": _rd(_read_only, TRAIN_ARGV, 2, "is on a read-only file system"),
    "disk-full": _rd(_disk_full, TRAIN_ARGV, 1, "the disk is full"),
    "empty-dir-convert": _rd("fresh", CONVERT3, 2, "holds no trained ANN"),
    "empty-dir-simulate": _rd("fresh", SIM3, 2, "holds no trained ANN"),
    "config-not-json": _rd(_write("config.json", "{oops"), CONVERT3, 2, "config.json is not valid JSON"),
    "config-not-json-resume": _rd(
        _write("config.json", "{oops"), [*CONVERT3, "--resume"], 2, "is not valid JSON"
    ),
    "config-a-list": _rd(_config([1, 2]), CONVERT3, 2, "has no 'train' section"),
    "config-no-train-keys": _rd(
        _config({"train": {"model": "digits-mlp"}}), CONVERT3, 2, "a 'train' section without"
    ),
    "ann-malicious": _rd(_malicious("ann.pt"), CONVERT3, 2, "unsupported GLOBAL posix.system"),
    "ann-truncated": _rd(_truncate("ann.pt"), CONVERT3, 2, "it is truncated or holds pickled objects"),
    "ann-other-model": _rd(
        lambda d: torch.save(nn.Linear(3, 2).state_dict(), d / "ann.pt"), CONVERT3, 2, "does not match"
    ),  # fmt: skip
    "checkpoint-malicious-resume": _rd(
        _malicious("checkpoints/ann_train.pt"),
        [*TRAIN_ARGV, "--resume"],
        2,
        "checkpoints/ann_train.pt cannot be read",
    ),  # fmt: skip
    "provenance-not-json": _rd(
        _write("provenance.json", "]"), CONVERT3, 2, "provenance.json is not valid JSON"
    ),
    "graph-truncated": _rd(_graph_edit("truncated"), SIM3, 2, "is not a readable .npz graph file"),
    "graph-code-alpha-negative": _rd(_graph_edit("code-alpha-neg"), SIM3, 2, "alpha must be > 0"),
    "graph-bogus-kind": _rd(_graph_edit("bogus-kind"), SIM3, 2, "unknown code kind 'bogus'"),
    "graph-no-meta": _rd(_graph_edit("no-meta"), SIM3, 2, "no 'meta' entry"),
    "network-missing": _rd(
        None, ["simulate", "--T", "5", "--backend", "torch"], 2, "snn-sc-ttfs-T5.npz does not exist"
    ),
    "retrained-then-simulate": _rd(
        _retrain, SIM3, 2, "is stale: snn-sc-ttfs-T3.npz was made from another ann.pt"
    ),
    "retrained-seed-then-convert-resume": _rd(
        _retrain, [*CONVERT3, "--resume"], 2, "configuration than the run in"
    ),
    "retrained-then-convert-resume": _rd(_retrain_lr, [*CONVERT3, "--resume"], 0, ""),
    "overwrite-demo-artifact": _rd(
        _made_by_demo, CONVERT3, 2, "was made by `scttfs demo` with other settings"
    ),
    "resume-other-options": _rd(
        None, [*CONVERT3, "--calibration-images", "64", "--resume"], 2, "different configuration"
    ),  # fmt: skip
    "busy": _rd("busy", CONVERT3, 1, "is in use by process"),
    "train-cifar-malicious": _rd("cifar:os-system", CIFAR_TRAIN, 2, "refusing to load global posix.system"),
    "train-cifar-truncated-tar": _rd("cifar:tar-truncated", CIFAR_TRAIN, 2, "is not a readable tar archive"),
    "train-cifar-labels-0.7": _rd("cifar:labels-0.7", CIFAR_TRAIN, 2, "must be integer class indices"),
    "train-model-dataset-mismatch": _rd(
        "cifar:protocol-4-tar",
        [*CIFAR_TRAIN, "--model", "digits-mlp"],
        2,
        "cannot take images of shape (3, 32, 32)",
    ),  # fmt: skip
    "train-vgg16-on-digits": _rd(
        "fresh", ["train", "--model", "vgg16", "--epochs", "1"], 2, "cannot take images of shape (1, 8, 8)"
    ),  # fmt: skip
    "unexpected-bug": _rd(_bug, CONVERT3, 1, "unexpected ZeroDivisionError"),
    "resume-again": _rd(None, [*CONVERT3, "--resume"], 0, ""),
    "simulate-current": _rd(None, SIM3, 0, ""),
}


@pytest.mark.parametrize("name", list(RUN_DIRS))
def test_run_directories(name, converted, tmp_path, capsys, monkeypatch):
    """Every row of issue 14's CLI list through ``cli.main``: one line, no traceback, the exit code.

    Rows: a malicious or truncated ``ann.pt`` (convert) or checkpoint (``train --resume``); a
    truncated or malformed graph (simulate); a run directory that is a file or read-only; a corrupt
    ``config.json`` before ``--resume``; a full disk; bad CIFAR files and a model/dataset mismatch in
    ``train``; a second writer; a retrained ANN then ``simulate``; ``convert`` over a demo's network.
    (``--fine-tune-sweep`` outside ``--sweep`` and ``--target cuda_standalone`` without brian2cuda
    are in :data:`CLI_OPTIONS`; Ctrl-C during a Brian2 run is in ``tests/test_cli.py``.)"""
    setup, argv, code, phrase = RUN_DIRS[name]
    run_dir = tmp_path / "run"
    holder = None
    if isinstance(setup, str) and setup.startswith("cifar:"):
        (tmp_path / "data").mkdir()
        _cifar_case(setup.split(":", 1)[1], tmp_path / "data")
        argv = [*argv, "--data-root", tmp_path / "data"]
        setup = "fresh"
    if setup == "file":
        run_dir.write_text("a file")
    elif setup == "under-file":
        (tmp_path / "file").write_text("a file")
        run_dir = tmp_path / "file" / "run"
    elif setup != "fresh" and not (callable(setup) and setup.__name__ in ("_read_only", "_disk_full")):
        shutil.copytree(converted, run_dir)
    if setup == "busy":
        holder = _holder(run_dir)
    elif callable(setup) and setup.__name__ in ("_read_only", "_disk_full", "_bug"):
        setup(monkeypatch)
    elif callable(setup):
        setup(run_dir)
    try:
        got, err = _cli([*argv, "--run-dir", run_dir], capsys)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert got == code and phrase in err and "Traceback" not in err, err
    if code:
        assert len(err.strip().splitlines()) == 1, err  # one line
    if name == "busy":
        assert f"process {holder.pid} (`scttfs demo --run-dir {run_dir}`" in err
    assert not (run_dir / "pwned").exists() and not list(run_dir.parent.rglob(".*.tmp-*"))
    if name == "retrained-then-convert-resume":
        assert "outputs are stale" in (run_dir / "log.txt").read_text()


# =================================================================================== Brian2 options
@pytest.fixture(scope="module")
def small_snn():
    return convert(_mlp(), (1, 8, 8), code=CODES_MLP)


X = torch.rand(4, 1, 8, 8)

BRIAN2_OPTIONS = [
    _case({"backend": "nest"}, (ValueError, "backend must be 'brian2' or 'torch'"), id="backend"),
    _case({"target": "gpu"}, (ValueError, "target must be one of"), id="target"),
    _case({"copies": 0}, (ValueError, "copies must be a positive integer"), id="copies-0"),
    _case({"copies": "8"}, (ValueError, "copies must be a positive integer"), id="copies-str"),
    _case({"copies": 2.5}, (ValueError, "copies must be a positive integer"), id="copies-float"),
    _case(
        {"target": "cython", "device": "cpp_standalone"},
        (ValueError, "give target or device"),
        id="target-and-device",
    ),
    _case({"record": ["nope"]}, (ValueError, "cannot record ['nope']"), id="record-unknown"),
    _case({"x": X[:0]}, (ValueError, "x holds no inputs"), id="no-inputs"),
    _case({"x": torch.rand(2, 8, 8)}, (ValueError, "x must have shape (n_inputs, 1, 8, 8)"), id="x-shape"),
    _case({"x": X * float("nan")}, (ValueError, "x must be finite"), id="x-nan"),
    _case({"memory_limit": 10}, (MemoryError, "does not fit even as a single copy"), id="memory-limit"),
    _case({"backend": "torch", "copies": 2}, (TypeError, "does not take 'copies'"), id="torch-copies"),
    _case({"backend": "torch", "target": "cython"}, (TypeError, "does not take 'target'"), id="torch-target"),
    _case(
        {"backend": "torch", "distributed": True},
        (ValueError, "distributed runs are Brian2 runs"),
        id="torch-distributed",
    ),  # fmt: skip
    _case({"backend": "torch", "record": True}, ACCEPT, id="torch-record"),
]


@pytest.mark.parametrize("options, expect", BRIAN2_OPTIONS)
def test_brian2_options(options, expect, small_snn):
    options = dict(options)
    x = options.pop("x", X)
    if options.get("backend", "brian2") == "brian2":
        options["progress"] = False
    if expect is ACCEPT:
        small_snn.simulate(x, **options)
        return
    exc, phrase = expect
    with pytest.raises(exc) as info:
        small_snn.simulate(x, **options)
    assert phrase in str(info.value), str(info.value)


# ================================================================= Ctrl-C and Brian2's wrapped errors
def _raised_from(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except BaseException as err:
        return err


class BrianObjectException(Exception):
    """Stands for brian2's wrapper (matched by name, as the CLI does)."""


INTERRUPTS = [
    _case(KeyboardInterrupt(), 130, "interrupted; continue with", id="ctrl-c"),
    _case(
        _raised_from(KeyboardInterrupt(), BrianObjectException("Brian 2 encountered an unexpected error")),
        130,
        "--resume",
        id="ctrl-c-wrapped-by-brian2",
    ),  # fmt: skip
    _case(
        _raised_from(KeyboardInterrupt(), RuntimeError("Project run failed")),
        130,
        "--resume",
        id="ctrl-c-under-standalone-run",
    ),  # fmt: skip
    _case(
        _raised_from(MemoryError(), BrianObjectException("An error occurred when preparing an object.")),
        1,
        "Brian2 failed: MemoryError",
        id="brian2-wrapped-error",
    ),  # fmt: skip
    _case(
        OSError(errno.ENOSPC, "No space left on device", "runs/x/ann.pt"),
        1,
        "the disk is full (writing runs/x/ann.pt)",
        id="enospc",
    ),  # fmt: skip
    _case(RunBusy("in use by process 7"), 1, "busy: in use by process 7", id="busy"),
    _case(StaleArtifact("x is stale"), 2, "error: x is stale", id="stale"),
    _case(UsageError("bad"), 2, "error: bad", id="usage"),
    _case(ValueError("line one\nline two"), 1, "error: line one", id="multi-line-message"),
]


@pytest.mark.parametrize("err, code, phrase", INTERRUPTS)
def test_failures_map_to_one_line(err, code, phrase, capsys):
    import argparse

    args = argparse.Namespace(command="simulate", run_dir="R")
    assert cli.exit_code(args, err) == code
    out = capsys.readouterr().err.strip()
    assert phrase in out and len(out.splitlines()) == 1, out


def test_an_interrupt_swallowed_during_the_command_never_exits_0(monkeypatch, capsys):
    def swallowed(args):
        """A command during which Ctrl-C is pressed and swallowed."""
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C ...
        time.sleep(0.05)
        return 0  # ... that something swallowed

    monkeypatch.setattr(cli, "cmd_convert", swallowed)  # the parser is built with it
    old = signal.signal(signal.SIGINT, lambda *a: None)
    try:
        assert cli.main(["convert", "--run-dir", "R"]) == 130
    finally:
        signal.signal(signal.SIGINT, old)
    assert "interrupted" in capsys.readouterr().err


def test_debug_shows_the_traceback(converted, tmp_path, monkeypatch):
    run_dir = shutil.copytree(converted, tmp_path / "run")
    _bug(monkeypatch)
    with pytest.raises(ZeroDivisionError):
        cli.main([*CONVERT3, "--run-dir", str(run_dir), "--debug"])


# ============================================================================ the README's counts
AREAS = {
    "codes": CODES,
    "potentials": POTENTIALS,
    "convert": CONVERT,
    "checkpoints": CHECKPOINTS,
    "graph files": GRAPH_FILES,
    "CIFAR archives": CIFAR,
    "CLI options": CLI_OPTIONS,
    "run directories": list(RUN_DIRS.values()),
    "Brian2 options": BRIAN2_OPTIONS,
    "failure messages": INTERRUPTS,
}


def _accepted(case) -> bool:
    values = case.values if hasattr(case, "values") else case
    return ACCEPT in values[1:2] or (len(values) == 4 and values[2] == 0)


def readme_section() -> str:
    """The README's table: cases per area, refused with a clear error / accepted and correct."""
    rows = ["| area | cases | refused with a clear error | accepted (valid input) |", "|---|---:|---:|---:|"]
    total = [0, 0]
    for area, cases in AREAS.items():
        ok = sum(_accepted(c) for c in cases)
        rows.append(f"| {area} | {len(cases)} | {len(cases) - ok} | {ok} |")
        total = [total[0] + len(cases), total[1] + ok]
    rows.append(f"| **all** | **{total[0]}** | **{total[0] - total[1]}** | **{total[1]}** |")
    return "\n".join(rows)


README_BEGIN = "<!-- bad-input table: python tests/test_bad_inputs.py --readme -->"
README_END = "<!-- end of bad-input table -->"


def test_readme_counts():
    text = (ROOT / "README.md").read_text()
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert table == readme_section(), "run `python tests/test_bad_inputs.py --readme`"
    assert sum(len(c) for c in AREAS.values()) >= 150


if __name__ == "__main__" and sys.argv[1:] == ["--readme"]:
    path = ROOT / "README.md"
    text = path.read_text()
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_BEGIN}\n{readme_section()}\n{README_END}{tail}")
    print(readme_section())
