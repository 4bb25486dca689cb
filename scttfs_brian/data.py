"""Data sets: scikit-learn's digits (bundled, the default) and CIFAR-10/100 from local archives.

Every loader returns a :class:`Dataset` of float32 image tensors ``(N, C, H, W)`` and int64 label
tensors, plus the normalization that was applied (``x = (pixel - mean) / std`` per channel,
pixels in ``[0, 1]``).

* :func:`digits` needs no download: the 1797 8x8 images of :func:`sklearn.datasets.load_digits`,
  split once (stratified, seeded) into 1347 training and 450 test images.
* :func:`cifar10` and :func:`cifar100` read the standard "python version" archives from the
  CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html), either extracted or still as
  ``.tar.gz``. Nothing is downloaded: the project runs offline.

Input coding. Normalized images have negative pixels. That is fine for the default analog input
(the first weight layer's potential starts at ``W x + b``, SPEC section 2), but an SC-TTFS input
encoding layer needs pixels ``>= 0``: load with ``normalize=False`` for that.

Safety. The CIFAR archives are pickles, and unpickling can run arbitrary code. They are read with
:class:`RestrictedUnpickler`, which refuses every global except the few numpy needs to rebuild
arrays and scalars (and ``_codecs.encode`` restricted to latin-1, which Python 3 writes for bytes
in protocol 2), so a tampered archive fails with :class:`pickle.UnpicklingError` instead of
running anything; batches re-pickled by Python 3 (protocols 2 to 5, numpy-int labels) load.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.26
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

__all__ = [
    "Dataset",
    "digits",
    "cifar10",
    "cifar100",
    "batches",
    "RestrictedUnpickler",
    "restricted_loads",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
]

#: Per-channel mean and standard deviation of the CIFAR-10 training pixels in ``[0, 1]``
#: (population statistics over all 50000 training images; the often-quoted
#: ``(0.2023, 0.1994, 0.2010)`` is the mean of per-image stds, not the pixel std).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: The same for the CIFAR-100 training pixels.
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of images with labels, and how the images were normalized.

    Attributes
    ----------
    x_train, x_test : torch.Tensor
        float32 images of shape ``(N, C, H, W)``: ``(pixel - mean) / std`` per channel, where
        pixels lie in ``[0, 1]`` (``mean = 0``, ``std = 1`` when not normalized).
    y_train, y_test : torch.Tensor
        int64 class indices of shape ``(N,)``.
    mean, std : tuple of float
        The per-channel normalization applied (one entry per channel).
    classes : tuple of str
        Class names, indexed by label.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset(train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, classes={self.num_classes}, mean={self.mean}, std={self.std})"
        )


# ---------------------------------------------------------------------------------------------
# digits


def digits(*, normalize: bool = True, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """The 8x8 handwritten digits bundled with scikit-learn (no download).

    Parameters
    ----------
    normalize : bool
        If True (default: the data every model of the package is trained on), pixels are
        standardized with one *global* mean and std of the training split's pixels (global rather
        than per pixel, because border pixels are almost always 0 and a per-pixel std would blow
        them up); the result has negative values, fine for analog input but not for SC-TTFS input
        encoding. If False, pixels are ``value / 16`` in ``[0, 1]``, usable by an SC-TTFS input
        encoding layer.
    test_size : float
        Fraction of the 1797 images held out for testing, in ``(0, 1)``. The default 0.25 gives
        1347 training and 450 test images.
    seed : int
        ``random_state`` of the stratified split; the same seed gives the same split.

    Returns
    -------
    Dataset
        Images ``(N, 1, 8, 8)``, classes ``"0"`` .. ``"9"``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1) (got {test_size!r}); the default is 0.25")
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    mean, std = (0.0,), (1.0,)
    if normalize:
        mean, std = (float(x_train.mean()),), (float(x_train.std()),)
        x_train = (x_train - mean[0]) / std[0]
        x_test = (x_test - mean[0]) / std[0]
    return Dataset(
        x_train=torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test)),
        mean=mean,
        std=std,
        classes=tuple(str(int(c)) for c in bunch.target_names),
    )


# ---------------------------------------------------------------------------------------------
# restricted unpickling


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3's protocol-2 pickles use it for ``bytes`` (``encode(text,
    'latin1')``); any other codec (``zlib``, ``rot13``, ...) is refused."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(
            f"refusing _codecs.encode with codec {encoding!r}: only latin-1 (bytes pickled by Python 3) is allowed"
        )
    return text.encode("latin-1", errors)


def _scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar`` (numpy scalars, e.g. ``np.int64`` labels) for plain
    dtypes only: an object dtype would return an arbitrary object."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(
            f"refusing a numpy scalar of dtype {dtype!r}: only plain numbers are allowed"
        )
    return scalar(dtype, data) if data is not None else scalar(dtype)


def _from_buffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (arrays in protocol 5) for plain dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing an array of dtype {dtype!r}: only plain numbers are allowed")
    return _frombuffer(buf, dtype, shape, order)


#: The only globals a CIFAR batch may reference: what numpy needs to rebuild an ndarray (protocol
#: 2: ``_reconstruct``; protocol 5: ``_frombuffer``) or a numpy scalar, and latin-1 ``encode``
#: (bytes in Python 3's protocol 2). ``numpy.core`` is the module name written by numpy < 2 (the
#: original archives), ``numpy._core`` the one written by numpy >= 2. None of them runs code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _from_buffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only plain data and numpy arrays.

    Dicts, lists, tuples, strings, bytes and numbers need no globals. Of the globals a pickle may
    name, only those in ``_ALLOWED_GLOBALS`` are resolved: numpy's array reconstruction
    (``_reconstruct``, ``ndarray``, ``dtype``; ``_frombuffer`` for protocol 5), numpy scalars of
    plain dtypes (``scalar``), and ``_codecs.encode`` with the latin-1 codec only; anything else
    (``os.system``, ``builtins.eval``, ``numpy.load``, ...) raises :class:`pickle.UnpicklingError`
    before it can be called.
    """

    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} from a pickle: only numpy array "
                f"reconstruction is allowed (is this file really a CIFAR batch?)"
            )
        return obj


def _load(data: bytes, where: str) -> Any:
    """:func:`restricted_loads` of one archive member; errors name it (a refused global stays an
    :class:`pickle.UnpicklingError`, a damaged pickle is a :class:`ValueError`)."""
    try:
        return restricted_loads(data)
    except pickle.UnpicklingError as err:
        if "refusing" in str(err):
            raise pickle.UnpicklingError(f"{where}: {err}") from None
        raise ValueError(f"{where} is not a readable pickle ({err}); re-extract or re-download it") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as err:
        raise ValueError(
            f"{where} is not a readable pickle ({type(err).__name__}: {err}); it is truncated or damaged: "
            "re-extract or re-download it"
        ) from None


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` and ``encoding='bytes'``.

    ``encoding='bytes'`` is what the CIFAR page prescribes: the archives were written by Python 2,
    whose strings come back as :class:`bytes` (keys like ``b'data'``).
    """
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


# ---------------------------------------------------------------------------------------------
# CIFAR


def _key(d: Mapping, name: str, where: str) -> Any:
    """``d[b'name']`` (Python 2 archives) or ``d['name']`` (re-pickled by Python 3)."""
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in d)
    raise ValueError(f"{where} has no key {name!r} (keys: {keys}); is it a CIFAR python-version batch?")


def _read_members(root: Path, folder: str, archive: str, members: list[str]) -> dict[str, bytes]:
    """Bytes of ``folder/<member>`` for each member, from ``root/folder`` or ``root/archive``."""
    directory = root / folder
    if root.name == folder and root.is_dir() and not directory.is_dir():
        directory = root  # the user pointed at the extracted folder itself
    tar_path = root / archive
    if directory.is_dir():
        out = {}
        for m in members:
            path = directory / m
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} is missing: the folder {directory} must hold {', '.join(members)}; "
                    f"re-extract {archive} (from {_CIFAR_PAGE}) into {root}"
                )
            out[m] = path.read_bytes()
        return out
    if tar_path.is_file():
        wanted = {f"{folder}/{m}": m for m in members}
        out = {}
        try:
            with tarfile.open(tar_path, "r:*") as tar:
                # one streaming pass: random access into a .tar.gz would decompress it again per member
                for info in tar:
                    name = info.name.removeprefix("./")
                    if name in wanted and info.isfile():
                        out[wanted[name]] = tar.extractfile(info).read()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise ValueError(
                f"{tar_path} is not a readable tar archive ({type(err).__name__}: {err}); it is truncated or "
                f"damaged: download {archive} again from {_CIFAR_PAGE}"
            ) from None
        missing = [f"{folder}/{m}" for m in members if m not in out]
        if missing:
            raise FileNotFoundError(
                f"{tar_path} lacks {', '.join(missing)}; is it the python version of the archive? "
                f"Download {archive} from {_CIFAR_PAGE} and put it in {root}"
            )
        return out
    raise FileNotFoundError(
        f"no CIFAR data in {root}: expected the folder {directory} or the archive {tar_path}. "
        f"Download {archive} (the python version) from {_CIFAR_PAGE} and put it in {root} "
        f"(extracting it is optional)"
    )


def _images_labels(batch: Any, label_key: str, num_classes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, Mapping):
        raise ValueError(f"{where} holds a {type(batch).__name__}, not a dict; is it a CIFAR batch?")
    data = np.asarray(_key(batch, "data", where))
    raw = np.asarray(_key(batch, label_key, where))
    if raw.size and raw.dtype.kind not in "iu":
        flat = raw.reshape(-1)
        if raw.dtype.kind == "f":
            flat = (
                flat[~np.isfinite(flat) | (flat != np.round(flat))]
                if np.any(flat != np.round(flat))
                else flat
            )
        raise ValueError(
            f"{where}: {label_key!r} must be integer class indices (got dtype {raw.dtype}, e.g. {flat[0].item()!r}); "
            "is it a CIFAR python-version batch?"
        )
    labels = raw.astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{where}: 'data' must be uint8 of shape (N, 3072) (got {data.dtype} {data.shape})")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{where}: {data.shape[0]} images but {labels.shape} {label_key!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{where}: {label_key!r} must lie in [0, {num_classes}) (got {labels.min()}..{labels.max()})"
        )
    return data, labels


def _to_tensor(data: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    x = torch.from_numpy(data).view(-1, 3, 32, 32).to(torch.float32).div_(255.0)
    if mean == (0.0,) * 3 and std == (1.0,) * 3:
        return x
    x.sub_(torch.tensor(mean).view(1, 3, 1, 1)).div_(torch.tensor(std).view(1, 3, 1, 1))
    return x


def _names(meta: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(meta, Mapping):
        raise ValueError(f"{where} holds a {type(meta).__name__}, not a dict; is it a CIFAR meta file?")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _key(meta, key, where))


def _cifar(
    root: str | os.PathLike,
    *,
    folder: str,
    archive: str,
    train: list[str],
    test: str,
    meta: str,
    label_key: str,
    names_key: str,
    normalize: bool,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Dataset:
    root = Path(root).expanduser()
    raw = _read_members(root, folder, archive, [*train, test, meta])
    classes = _names(_load(raw.pop(meta), f"{folder}/{meta}"), names_key, f"{folder}/{meta}")
    parts = [
        _images_labels(_load(raw.pop(m), f"{folder}/{m}"), label_key, len(classes), f"{folder}/{m}")
        for m in train
    ]
    x_test, y_test = _images_labels(
        _load(raw.pop(test), f"{folder}/{test}"), label_key, len(classes), f"{folder}/{test}"
    )
    if not normalize:
        mean, std = (0.0,) * 3, (1.0,) * 3
    return Dataset(
        x_train=_to_tensor(np.concatenate([p[0] for p in parts]), mean, std),
        y_train=torch.from_numpy(np.concatenate([p[1] for p in parts])),
        x_test=_to_tensor(x_test, mean, std),
        y_test=torch.from_numpy(y_test),
        mean=tuple(mean),
        std=tuple(std),
        classes=classes,
    )


def cifar10(root: str | os.PathLike, *, normalize: bool = True) -> Dataset:
    """CIFAR-10 from the python-version archive (50000 training, 10000 test images).

    Parameters
    ----------
    root : path-like
        A folder holding either ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
        ``test_batch``, ``batches.meta``) or ``cifar-10-python.tar.gz``, read without extracting.
        The folder ``cifar-10-batches-py`` itself is accepted too.
    normalize : bool
        Standardize each channel with :data:`CIFAR10_MEAN` and :data:`CIFAR10_STD` (default). If
        False, pixels stay in ``[0, 1]`` (as needed by an SC-TTFS input encoding layer).

    Returns
    -------
    Dataset
        Images ``(N, 3, 32, 32)`` float32, labels int64, the 10 class names.

    Raises
    ------
    FileNotFoundError
        If neither the folder nor the archive is there, or a batch is missing from it.
    pickle.UnpicklingError
        If a batch references anything but numpy arrays (see :class:`RestrictedUnpickler`).
    """
    return _cifar(
        root,
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        train=[f"data_batch_{i}" for i in range(1, 6)],
        test="test_batch",
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        normalize=normalize,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    )


def cifar100(root: str | os.PathLike, *, normalize: bool = True, label: str = "fine") -> Dataset:
    """CIFAR-100 from the python-version archive (50000 training, 10000 test images).

    Parameters
    ----------
    root : path-like
        A folder holding either ``cifar-100-python/`` (``train``, ``test``, ``meta``) or
        ``cifar-100-python.tar.gz``, read without extracting. The folder ``cifar-100-python``
        itself is accepted too.
    normalize : bool
        Standardize each channel with :data:`CIFAR100_MEAN` and :data:`CIFAR100_STD` (default).
        If False, pixels stay in ``[0, 1]``.
    label : {"fine", "coarse"}
        The 100 fine classes (the paper's task) or the 20 coarse superclasses.

    Returns
    -------
    Dataset
        Images ``(N, 3, 32, 32)`` float32, labels int64, the 100 (or 20) class names.

    Raises
    ------
    FileNotFoundError
        If neither the folder nor the archive is there, or a file is missing from it.
    pickle.UnpicklingError
        If a file references anything but numpy arrays (see :class:`RestrictedUnpickler`).
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse' (got {label!r})")
    return _cifar(
        root,
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        train=["train"],
        test="test",
        meta="meta",
        label_key=f"{label}_labels",
        names_key=f"{label}_label_names",
        normalize=normalize,
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
    )


# ---------------------------------------------------------------------------------------------
# batching


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x_batch, y_batch)`` pairs covering ``x`` and ``y`` once (the last batch may be short).

    Parameters
    ----------
    x, y : torch.Tensor
        Inputs and targets with the same first dimension.
    batch_size : int
        Samples per batch, ``>= 1``.
    shuffle : bool
        Visit samples in a random order drawn from ``seed`` (the same seed, the same order; pass
        e.g. ``seed + epoch`` for a new order each epoch).
    seed : int
        Seed of the permutation when ``shuffle`` is True.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1 (got {batch_size!r})")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length (got {len(x)} and {len(y)})")
    n = len(x)
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]
    else:
        for i in range(0, n, batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]
