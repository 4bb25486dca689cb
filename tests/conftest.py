import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

from scttfs_brian import PRESETS, SCTTFSCode, ThresholdKernel, TTFSCode  # noqa: E402

#: Kernel pairs (encode, calibrate) covering the cases the tests must see: both Table 1 presets,
#: theta_c above theta_e and below it, fast and slow decay.
KERNEL_PAIRS = {
    "table1-cifar10": PRESETS["cifar10"],
    "table1-cifar100": PRESETS["cifar100"],
    "cal-below-enc": (ThresholdKernel(1.0, 0.0, 0.5), ThresholdKernel(0.3, 0.0, 0.5)),
    "cal-above-enc": (ThresholdKernel(0.5, 0.0, 0.3), ThresholdKernel(1.0, 0.0, 0.3)),
    "fast-decay": (ThresholdKernel(1.0, 0.0, 1.5), ThresholdKernel(0.5, -0.5, 1.5)),
    "slow-decay": (ThresholdKernel(2.0, 0.1, 0.1), ThresholdKernel(0.2, 0.0, 0.2)),
}
WINDOWS = (1, 2, 4, 6, 8, 16)


def probe_potentials(code, n_random=10_000, seed=0):
    """Random potentials (negatives, zeros, above the range) plus every threshold exactly and
    its float neighbours, and every encoding+calibration boundary."""
    rng = np.random.default_rng(seed)
    top = code.max_value
    parts = [
        rng.uniform(-0.5 * top, 1.5 * top, n_random),
        np.zeros(50),
        rng.uniform(top, 3 * top, 100),
        np.asarray(code.table_e),
    ]
    if code.calibrate is not None:
        parts.append((np.asarray(code.table_e)[:, None] + np.asarray(code.table_c)[None, :]).ravel())
    exact = np.concatenate(parts[3:])
    parts += [np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf)]
    return np.concatenate(parts)


@pytest.fixture(params=list(KERNEL_PAIRS), ids=list(KERNEL_PAIRS))
def kernel_pair(request):
    return KERNEL_PAIRS[request.param]


def sc_code(pair, T):
    return SCTTFSCode(T, *pair)


def ttfs_code(pair, T):
    return TTFSCode(T, pair[0])
