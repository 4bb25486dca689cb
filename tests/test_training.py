"""ANN training, the pre-conversion SNN and its fine-tuning (section 3.4), export + BN folding."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scttfs_brian import data
from scttfs_brian.coding import SCTTFSCode, ThresholdKernel
from scttfs_brian.conversion import convert
from scttfs_brian.models import DigitsCNN
from scttfs_brian.torch import SpikingActivation
from scttfs_brian.training import (
    KERNEL_MIN,
    evaluate,
    export,
    fine_tune,
    init_codes,
    spiking_twin,
    train_ann,
    trainable_parameters,
    twin_spike_times,
)


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return DigitsCNN(channels=(4, 8), hidden=16, pool_after=(1,))


def subset(ds, n_train, n_test=None):
    n_test = n_test or len(ds.x_test)
    return data.Dataset(
        ds.x_train[:n_train],
        ds.y_train[:n_train],
        ds.x_test[:n_test],
        ds.y_test[:n_test],
        ds.mean,
        ds.std,
        ds.classes,
    )


@pytest.fixture(scope="module")
def digits():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster, and results depend on the count
    yield data.digits(normalize=True)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(digits):
    """A small CNN trained briefly (BatchNorm has non-trivial running statistics)."""
    model = small_cnn()
    train_ann(model, subset(digits, len(digits.x_train), 100), epochs=3, lr=1e-2, progress=False)
    return model


def kernels(twin):
    return {
        k: v.detach().clone()
        for k, v in trainable_parameters(twin).items()
        if ".encode." in k or ".calibrate." in k
    }


# --------------------------------------------------------------------------------------------
# ANN training
# --------------------------------------------------------------------------------------------
def test_train_ann_same_seed_gives_same_weights(digits):
    ds = subset(digits, 256, 50)
    states = []
    for _ in range(2):
        model = small_cnn(seed=3)
        hist = train_ann(model, ds, epochs=1, lr=1e-2, seed=5, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert len(hist["loss"]) == 4 and len(hist["test_accuracy"]) == 1
    # cosine annealing: the learning rate falls to 0 over all steps
    assert hist["lr"][-1] == pytest.approx(0.0, abs=1e-12) and hist["lr"][0] < 1e-2


def test_train_ann_resumes_where_an_uninterrupted_run_ends(digits):
    ds = subset(digits, 192, 50)
    full = small_cnn(seed=1)
    train_ann(full, ds, epochs=2, lr=1e-2, optimizer="sgd", seed=2, progress=False)

    saved = []
    first = small_cnn(seed=1)
    with pytest.raises(KeyboardInterrupt):

        def stop_after_first(state):
            saved.append(copy.deepcopy(state))
            raise KeyboardInterrupt

        train_ann(
            first, ds, epochs=2, lr=1e-2, optimizer="sgd", seed=2, progress=False, checkpoint=stop_after_first
        )
    assert saved[0]["epoch"] == 1
    resumed = small_cnn(seed=99)  # other initial weights: the checkpoint must overwrite them
    hist = train_ann(
        resumed, ds, epochs=2, lr=1e-2, optimizer="sgd", seed=2, progress=False, resume_from=saved[0]
    )
    assert len(hist["epoch_loss"]) == 2
    assert all(torch.equal(full.state_dict()[k], resumed.state_dict()[k]) for k in full.state_dict())


def test_train_ann_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="optimizer must be"):
        train_ann(small_cnn(), digits, epochs=1, lr=1e-3, optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train_ann(small_cnn(), digits, epochs=1, lr=-1.0)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        train_ann(small_cnn(), digits, epochs=0, lr=1e-3)
    with pytest.raises(TypeError, match="Dataset"):
        train_ann(small_cnn(), (digits.x_train, digits.y_train), epochs=1, lr=1e-3)


def test_evaluate_restores_the_mode(trained, digits):
    trained.train()
    acc = evaluate(trained, digits.x_test, digits.y_test)
    assert trained.training
    trained.eval()
    assert 0.5 < acc <= 1.0


# --------------------------------------------------------------------------------------------
# The pre-conversion SNN
# --------------------------------------------------------------------------------------------
def test_init_codes_names_every_relu(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    relus = [n for n, m in trained.named_modules() if isinstance(m, nn.ReLU)]
    assert sorted(codes) == sorted(relus)
    assert all(isinstance(c, SCTTFSCode) and c.T == 3 for c in codes.values())


def test_spiking_twin_replaces_relus_and_leaves_the_ann_alone(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    before = copy.deepcopy(trained.state_dict())
    twin = spiking_twin(trained, codes)
    assert not any(isinstance(m, nn.ReLU) for m in twin.modules())
    assert sum(isinstance(m, SpikingActivation) for m in twin.modules()) == len(codes)
    assert not twin.training
    assert all(torch.equal(before[k], trained.state_dict()[k]) for k in before)
    # the twin computes what the converted network computes
    snn = convert(trained, (1, 8, 8), code=codes)
    x = digits.x_test[:64].double()
    twin64 = copy.deepcopy(twin).double()
    with torch.no_grad():
        np.testing.assert_allclose(twin64(x).numpy(), snn.functional(x).output.numpy(), atol=1e-9)


def test_spiking_twin_needs_relu_modules(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    name = next(iter(codes))
    with pytest.raises(ValueError, match="no code for the nn.ReLU"):
        spiking_twin(trained, {k: v for k, v in codes.items() if k != name})

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 8)
            self.fc2 = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x.flatten(1))))

    net = Functional()
    fcodes = init_codes(net, digits.x_train[:32], 3)
    assert list(fcodes) == ["fc1.relu"]
    with pytest.raises(ValueError, match="not nn.ReLU modules.*fc1.relu"):
        spiking_twin(net, fcodes)


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------
def test_one_fine_tuning_step_lowers_the_loss_and_moves_the_kernels(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    twin = spiking_twin(trained, codes)
    batch = subset(digits, 128, 16)  # one batch of 128: one step
    x, y = batch.x_train, batch.y_train
    with torch.no_grad():
        loss0 = F.cross_entropy(twin(x), y).item()
    k0 = kernels(twin)
    frozen0 = {k: v.clone() for k, v in twin.state_dict().items() if k not in trainable_parameters(twin)}
    hist = fine_tune(twin, batch, epochs=1, lr=1e-3, batch_size=128, progress=False)
    assert len(hist["loss"]) == 1 and hist["loss"][0] == pytest.approx(loss0)
    with torch.no_grad():
        loss1 = F.cross_entropy(twin(x), y).item()
    assert loss1 < loss0
    k1 = kernels(twin)
    for part in ("alpha", "beta", "k"):
        for kern in ("encode", "calibrate"):
            names = [n for n in k0 if n.endswith(f".{kern}.{part}")]
            assert names and all(not torch.equal(k0[n], k1[n]) for n in names), (kern, part)
    # weights, biases and BatchNorm running statistics stay as they were
    assert all(torch.equal(frozen0[k], twin.state_dict()[k]) for k in frozen0)
    assert any(".running_mean" in k for k in frozen0)


def test_fine_tuning_keeps_kernels_valid(trained, digits):
    twin = spiking_twin(trained, init_codes(trained, digits.x_train, 2))
    fine_tune(twin, subset(digits, 256, 16), epochs=1, lr=5.0, progress=False)  # absurd steps
    for m in twin.modules():
        if isinstance(m, SpikingActivation):
            for kern in (m.encode, m.calibrate):
                assert kern.alpha.item() >= KERNEL_MIN and kern.k.item() >= KERNEL_MIN
    _, codes = export(twin)  # valid ThresholdKernels
    assert all(c.encode.alpha >= KERNEL_MIN and c.calibrate.k >= KERNEL_MIN for c in codes.values())


def test_export_folds_bn_and_reproduces_the_twin_spike_for_spike(trained, digits):
    twin = spiking_twin(trained, init_codes(trained, digits.x_train, 3))
    fine_tune(twin, subset(digits, 256, 16), epochs=1, lr=1e-2, progress=False)
    bn = [m for m in twin.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))  # gamma was trained
    twin64 = copy.deepcopy(twin).double()
    ann, codes = export(twin64)
    assert not any(isinstance(m, SpikingActivation) for m in ann.modules())
    assert set(codes) == {n for n, m in twin.named_modules() if isinstance(m, SpikingActivation)}
    snn = convert(ann, (1, 8, 8), code=codes)  # BatchNorm folded into the convolutions (eq. 24)
    x = digits.x_test.double()
    out = snn.functional(x, record=True)
    with torch.no_grad():
        ref = twin64(x)
    np.testing.assert_allclose(out.output.numpy(), ref.numpy(), rtol=0, atol=1e-9)
    assert torch.equal(out.output.argmax(1), ref.argmax(1))
    times = twin_spike_times(twin64, x)
    assert set(times) == set(out.spike_times)
    for name, (t_enc, t_cal) in times.items():
        assert torch.equal(t_enc, out.spike_times[name][0]), name
        assert torch.equal(t_cal, out.spike_times[name][1]), name
    # the exported codes are the twin's trained kernels
    act = twin64.get_submodule(next(iter(codes)))
    assert codes[next(iter(codes))].encode == ThresholdKernel(
        act.encode.alpha.item(), act.encode.beta.item(), act.encode.k.item()
    )


def test_fine_tune_rejects_a_plain_ann(trained, digits):
    with pytest.raises(ValueError, match="spiking_twin"):
        fine_tune(trained, digits, epochs=1)
    with pytest.raises(ValueError, match="spiking_twin"):
        export(trained)
