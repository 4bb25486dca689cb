"""Data loaders: the bundled digits split, and CIFAR readers on tiny archives in the real format."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from scttfs_brian import data
from scttfs_brian.data import RestrictedUnpickler, batches, cifar10, cifar100, digits, restricted_loads

# --------------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def raw_digits():
    return digits(normalize=False)


def test_digits_shapes_and_dtypes(raw_digits):
    d = raw_digits
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert d.y_train.shape == (1347,) and d.y_test.shape == (450,)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert d.classes == tuple(str(i) for i in range(10))
    assert d.mean == (0.0,) and d.std == (1.0,)


def test_digits_pixels_in_unit_interval(raw_digits):
    for x in (raw_digits.x_train, raw_digits.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert raw_digits.x_train.max() == 1.0


def test_digits_split_is_stratified(raw_digits):
    p_train = torch.bincount(raw_digits.y_train, minlength=10) / len(raw_digits.y_train)
    p_test = torch.bincount(raw_digits.y_test, minlength=10) / len(raw_digits.y_test)
    assert torch.all((p_train - p_test).abs() < 0.01)


def test_digits_split_is_deterministic_and_seeded(raw_digits):
    again = digits(normalize=False)
    assert torch.equal(again.x_train, raw_digits.x_train) and torch.equal(again.y_test, raw_digits.y_test)
    other = digits(seed=1)
    assert not torch.equal(other.x_train, raw_digits.x_train)


def test_digits_normalized_with_global_training_statistics(raw_digits):
    d = digits(normalize=True)
    assert len(d.mean) == 1 and len(d.std) == 1
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std(unbiased=False)) - 1) < 1e-4
    assert d.x_train.min() < 0  # negative inputs: analog input coding only
    torch.testing.assert_close(d.x_test * d.std[0] + d.mean[0], raw_digits.x_test)


def test_digits_rejects_bad_test_size():
    with pytest.raises(ValueError, match="test_size"):
        digits(test_size=1.5)


def test_batches_cover_everything_once():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    plain = list(batches(x, y, 4))
    assert [len(b[1]) for b in plain] == [4, 4, 2] and torch.equal(torch.cat([b[1] for b in plain]), y)
    shuffled = torch.cat([b[1] for b in batches(x, y, 3, shuffle=True, seed=5)])
    assert sorted(shuffled.tolist()) == list(range(10)) and not torch.equal(shuffled, y)
    assert torch.equal(shuffled, torch.cat([b[1] for b in batches(x, y, 3, shuffle=True, seed=5)]))
    for xb, yb in batches(x, y, 3, shuffle=True):
        assert torch.equal(xb[:, 0].long(), yb)
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(x, y, 0))


# --------------------------------------------------------------------------------------------- CIFAR archives


class _Python2Pickler(pickle._Pickler):
    """Writes every str and bytes as a Python 2 ``str`` (BINSTRING), as the real CIFAR archives do.

    Loaded with ``encoding='bytes'`` they come back as bytes: keys ``b'data'``, dtype ``b'u1'``.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def _python2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(obj)
    # numpy < 2, which wrote the archives, lived in numpy.core
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batch(n, rng, label_keys, name):
    out = {"batch_label": name, "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    for key, k in label_keys.items():
        out[key] = rng.integers(0, k, n).tolist()
    out["filenames"] = [f"img_{i}.png" for i in range(n)]
    return out


def _write_cifar10(root: Path, as_tar: bool) -> dict:
    rng = np.random.default_rng(0)
    files = {
        f"data_batch_{i}": _batch(3, rng, {"labels": 10}, f"training batch {i} of 5") for i in range(1, 6)
    }
    files["test_batch"] = _batch(4, rng, {"labels": 10}, "testing batch 1 of 1")
    files["batches.meta"] = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    _write(root, "cifar-10-batches-py", "cifar-10-python.tar.gz", files, as_tar)
    return files


def _write_cifar100(root: Path, as_tar: bool) -> dict:
    rng = np.random.default_rng(1)
    keys = {"fine_labels": 100, "coarse_labels": 20}
    files = {"train": _batch(5, rng, keys, "training batch 1 of 1"), "test": _batch(2, rng, keys, "testing")}
    files["meta"] = {
        "fine_label_names": [f"fine{i}" for i in range(100)],
        "coarse_label_names": [f"coarse{i}" for i in range(20)],
    }
    _write(root, "cifar-100-python", "cifar-100-python.tar.gz", files, as_tar)
    return files


def _write(root: Path, folder: str, archive: str, files: dict, as_tar: bool) -> None:
    blobs = {name: _python2_pickle(obj) for name, obj in files.items()}
    if as_tar:
        with tarfile.open(root / archive, "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (root / folder).mkdir()
        for name, blob in blobs.items():
            (root / folder / name).write_bytes(blob)


def _pixels(batch) -> torch.Tensor:
    return torch.from_numpy(batch["data"]).view(-1, 3, 32, 32).float() / 255


def test_synthetic_archive_is_in_the_python2_format(tmp_path):
    blob = _python2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [0]})
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob and b"_codecs" not in blob
    loaded = restricted_loads(blob)
    assert set(loaded) == {b"data", b"labels"} and loaded[b"data"].dtype == np.uint8


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar.gz"])
def test_cifar10_reads_folder_and_tar(tmp_path, as_tar):
    files = _write_cifar10(tmp_path, as_tar)
    d = cifar10(tmp_path, normalize=False)
    assert d.x_train.shape == (15, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    train = torch.cat([_pixels(files[f"data_batch_{i}"]) for i in range(1, 6)])
    torch.testing.assert_close(d.x_train, train)
    torch.testing.assert_close(d.x_test, _pixels(files["test_batch"]))
    assert d.y_train.tolist() == sum((files[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert d.y_test.tolist() == files["test_batch"]["labels"]
    assert d.classes == tuple(f"class{i}" for i in range(10))
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def test_cifar10_normalizes_per_channel(tmp_path):
    files = _write_cifar10(tmp_path, as_tar=True)
    d = cifar10(tmp_path)
    assert d.mean == data.CIFAR10_MEAN and d.std == data.CIFAR10_STD
    mean = torch.tensor(d.mean).view(1, 3, 1, 1)
    std = torch.tensor(d.std).view(1, 3, 1, 1)
    torch.testing.assert_close(d.x_test, (_pixels(files["test_batch"]) - mean) / std)


def test_cifar10_accepts_the_extracted_folder_itself(tmp_path):
    _write_cifar10(tmp_path, as_tar=False)
    assert cifar10(tmp_path / "cifar-10-batches-py").x_train.shape[0] == 15


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar.gz"])
def test_cifar100_fine_and_coarse(tmp_path, as_tar):
    files = _write_cifar100(tmp_path, as_tar)
    fine = cifar100(tmp_path)
    assert fine.x_train.shape == (5, 3, 32, 32) and fine.x_test.shape == (2, 3, 32, 32)
    assert fine.y_train.tolist() == files["train"]["fine_labels"] and fine.num_classes == 100
    assert fine.classes[7] == "fine7" and fine.mean == data.CIFAR100_MEAN
    coarse = cifar100(tmp_path, label="coarse", normalize=False)
    assert coarse.y_test.tolist() == files["test"]["coarse_labels"] and coarse.num_classes == 20
    torch.testing.assert_close(coarse.x_train, _pixels(files["train"]))
    with pytest.raises(ValueError, match="'fine' or 'coarse'"):
        cifar100(tmp_path, label="medium")


def test_cifar_missing_archive_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        cifar10(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and str(tmp_path / "cifar-10-python.tar.gz") in msg
    assert "download cifar-10-python.tar.gz" in msg.lower() and f"put it in {tmp_path}" in msg
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        cifar100(tmp_path)


def test_cifar_missing_member_is_named(tmp_path):
    _write_cifar10(tmp_path, as_tar=False)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        cifar10(tmp_path)


def test_cifar_bad_contents_are_reported(tmp_path):
    files = _write_cifar10(tmp_path, as_tar=False)
    bad = dict(files["test_batch"], labels=[11] * 4)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(_python2_pickle(bad))
    with pytest.raises(ValueError, match=r"test_batch: 'labels' must lie in \[0, 10\)"):
        cifar10(tmp_path)


class _System:
    """Unpickles as ``os.system(command)``: what a tampered archive would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    for blob in (
        pickle.dumps({"data": _System(f"touch {marker}")}, protocol=4),
        _python2_pickle({"data": _System(f"touch {marker}")}),
    ):
        with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|os|nt)\.system"):
            restricted_loads(blob)
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(_System("true"), protocol=4)) == 0  # the payload does run unrestricted
    for target in (("builtins", "eval"), ("numpy", "load"), ("_codecs", "decode"), ("numpy", "frombuffer")):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            RestrictedUnpickler(io.BytesIO(b"")).find_class(*target)
    # the allowed helpers refuse what could build arbitrary objects or expand data
    encode = RestrictedUnpickler(io.BytesIO(b"")).find_class("_codecs", "encode")
    assert encode("\xff", "latin1") == b"\xff"
    with pytest.raises(pickle.UnpicklingError, match="codec 'zlib'"):
        encode("x", "zlib")
    scalar = RestrictedUnpickler(io.BytesIO(b"")).find_class("numpy._core.multiarray", "scalar")
    with pytest.raises(pickle.UnpicklingError, match="dtype"):
        scalar(np.dtype(object), None)


def test_cifar_reader_refuses_a_malicious_archive(tmp_path):
    files = _write_cifar10(tmp_path, as_tar=True)
    marker = tmp_path / "pwned"
    evil = dict(files["test_batch"], batch_label=_System(f"touch {marker}"))
    (tmp_path / "cifar-10-python.tar.gz").unlink()
    files["test_batch"] = evil
    _write(tmp_path, "cifar-10-batches-py", "cifar-10-python.tar.gz", files, as_tar=True)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        cifar10(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_load_too(protocol):
    # re-pickled by Python 3 (str keys, numpy >= 2 module names; protocol 2 writes bytes through
    # _codecs.encode, protocol 5 arrays through _frombuffer; numpy-int labels are numpy scalars)
    obj = {"data": np.arange(3072, dtype=np.uint16).astype(np.uint8)[None], "labels": [np.int64(3)]}
    loaded = restricted_loads(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(loaded["data"], obj["data"])
    assert loaded["labels"] == [3]


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_repickled_by_python3_is_read_like_the_original(tmp_path, protocol):
    files = _write_cifar10(tmp_path, as_tar=False)
    original = cifar10(tmp_path, normalize=False)
    for name, obj in files.items():
        if "labels" in obj:
            obj = dict(obj, labels=[np.int64(v) for v in obj["labels"]])
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(obj, protocol=protocol))
    again = cifar10(tmp_path, normalize=False)
    assert torch.equal(again.x_train, original.x_train) and torch.equal(again.y_test, original.y_test)


def test_cifar_fractional_labels_are_refused_not_truncated(tmp_path):
    files = _write_cifar10(tmp_path, as_tar=False)
    bad = dict(files["test_batch"], labels=[0.7, 1, 2, 3])
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(bad, protocol=4))
    with pytest.raises(ValueError, match=r"test_batch: 'labels' must be integer class indices .*0\.7"):
        cifar10(tmp_path)
