"""ANN training, the spiking ANN (section 3.4), bias correction, fine-tuning, export + BN folding."""

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
    agreement,
    ann_outputs,
    bias_corrected,
    correct_biases,
    evaluate,
    export,
    fine_tune,
    fine_tune_windows,
    init_codes,
    spike_times,
    spiking_ann,
    train_ann,
    trainable_parameters,
    validation_split,
    with_window,
    without_validation,
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


def kernels(spiking):
    return {
        k: v.detach().clone()
        for k, v in trainable_parameters(spiking).items()
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


def test_spiking_ann_replaces_relus_and_leaves_the_ann_alone(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    before = copy.deepcopy(trained.state_dict())
    spiking = spiking_ann(trained, codes)
    assert not any(isinstance(m, nn.ReLU) for m in spiking.modules())
    assert sum(isinstance(m, SpikingActivation) for m in spiking.modules()) == len(codes)
    assert not spiking.training
    assert all(torch.equal(before[k], trained.state_dict()[k]) for k in before)
    # the spiking ANN computes what the converted network computes
    snn = convert(trained, (1, 8, 8), code=codes)
    x = digits.x_test[:64].double()
    spiking64 = copy.deepcopy(spiking).double()
    with torch.no_grad():
        np.testing.assert_allclose(spiking64(x).numpy(), snn.functional(x).output.numpy(), atol=1e-9)


def test_spiking_ann_needs_relu_modules(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    name = next(iter(codes))
    with pytest.raises(ValueError, match="no code for the nn.ReLU"):
        spiking_ann(trained, {k: v for k, v in codes.items() if k != name})

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
        spiking_ann(net, fcodes)


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------
def test_one_fine_tuning_step_lowers_the_loss_and_moves_the_kernels(trained, digits):
    codes = init_codes(trained, digits.x_train, 3)
    spiking = spiking_ann(trained, codes)
    batch = subset(digits, 128, 16)  # one batch of 128: one step
    x, y = batch.x_train, batch.y_train
    with torch.no_grad():
        loss0 = F.cross_entropy(spiking(x), y).item()
    k0 = kernels(spiking)
    frozen0 = {
        k: v.clone() for k, v in spiking.state_dict().items() if k not in trainable_parameters(spiking)
    }
    hist = fine_tune(
        spiking, batch, epochs=1, lr=1e-3, batch_size=128, objective="label", validation=None, progress=False
    )
    assert len(hist["loss"]) == 1 and hist["loss"][0] == pytest.approx(loss0)
    with torch.no_grad():
        loss1 = F.cross_entropy(spiking(x), y).item()
    assert loss1 < loss0
    k1 = kernels(spiking)
    for part in ("alpha", "beta", "k"):
        for kern in ("encode", "calibrate"):
            names = [n for n in k0 if n.endswith(f".{kern}.{part}")]
            assert names and all(not torch.equal(k0[n], k1[n]) for n in names), (kern, part)
    # weights, biases and BatchNorm running statistics stay as they were
    assert all(torch.equal(frozen0[k], spiking.state_dict()[k]) for k in frozen0)
    assert any(".running_mean" in k for k in frozen0)


def test_fine_tuning_keeps_kernels_valid(trained, digits):
    spiking = spiking_ann(trained, init_codes(trained, digits.x_train, 2))
    fine_tune(spiking, subset(digits, 256, 16), teacher=trained, epochs=1, lr=5.0, progress=False)  # absurd
    for m in spiking.modules():
        if isinstance(m, SpikingActivation):
            for kern in (m.encode, m.calibrate):
                assert kern.alpha.item() >= KERNEL_MIN and kern.k.item() >= KERNEL_MIN
    _, codes = export(spiking)  # valid ThresholdKernels
    assert all(c.encode.alpha >= KERNEL_MIN and c.calibrate.k >= KERNEL_MIN for c in codes.values())


def test_export_folds_bn_and_reproduces_the_spiking_ann_spike_for_spike(trained, digits):
    spiking = spiking_ann(trained, init_codes(trained, digits.x_train, 3))
    fine_tune(spiking, subset(digits, 256, 16), teacher=trained, epochs=1, lr=1e-2, progress=False)
    bn = [m for m in spiking.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))  # gamma was trained
    spiking64 = copy.deepcopy(spiking).double()
    ann, codes = export(spiking64)
    assert not any(isinstance(m, SpikingActivation) for m in ann.modules())
    assert set(codes) == {n for n, m in spiking.named_modules() if isinstance(m, SpikingActivation)}
    snn = convert(ann, (1, 8, 8), code=codes)  # BatchNorm folded into the convolutions (eq. 24)
    x = digits.x_test.double()
    out = snn.functional(x, record=True)
    with torch.no_grad():
        ref = spiking64(x)
    np.testing.assert_allclose(out.output.numpy(), ref.numpy(), rtol=0, atol=1e-9)
    assert torch.equal(out.output.argmax(1), ref.argmax(1))
    times = spike_times(spiking64, x)
    assert set(times) == set(out.spike_times)
    for name, (t_enc, t_cal) in times.items():
        assert torch.equal(t_enc, out.spike_times[name][0]), name
        assert torch.equal(t_cal, out.spike_times[name][1]), name
    # the exported codes are the spiking's trained kernels
    act = spiking64.get_submodule(next(iter(codes)))
    assert codes[next(iter(codes))].encode == ThresholdKernel(
        act.encode.alpha.item(), act.encode.beta.item(), act.encode.k.item()
    )


def test_fine_tune_rejects_a_plain_ann(trained, digits):
    with pytest.raises(ValueError, match="spiking_ann"):
        fine_tune(trained, digits, teacher=trained, epochs=1)
    with pytest.raises(ValueError, match="spiking_ann"):
        export(trained)


def test_fine_tune_needs_a_teacher_to_distill(trained, digits):
    spiking = spiking_ann(trained, init_codes(trained, digits.x_train, 2))
    with pytest.raises(ValueError, match="teacher=ann"):
        fine_tune(spiking, digits, epochs=1)
    with pytest.raises(ValueError, match="objective must be"):
        fine_tune(spiking, digits, teacher=trained, epochs=1, objective="kl")
    with pytest.raises(ValueError, match="mixup"):
        fine_tune(spiking, digits, epochs=1, objective="label", mixup=0.4)


# --------------------------------------------------------------------------------------------
# Agreement with the ANN, validation split, model selection
# --------------------------------------------------------------------------------------------
def test_agreement_counts_equal_predictions():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    out = np.array([[0.5, 0.0], [1.0, 0.0], [2.0, 1.5], [0.0, 3.0]])
    a = agreement(out, ref)
    assert a["agreement"] == 0.75
    assert a["agrees"].tolist() == [True, False, True, True]
    assert a["mean_abs_output_diff"] == pytest.approx(np.abs(out - ref).mean())
    with pytest.raises(ValueError, match="same non-empty shape"):
        agreement(out[:3], ref)


def test_validation_split_is_stratified_disjoint_and_seeded(digits):
    train, val = validation_split(digits, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(digits.x_train)
    y = digits.y_train.numpy()
    for c in range(10):
        share = np.mean(y[val] == c) / np.mean(y == c)
        assert 0.8 < share < 1.25
    assert np.array_equal(val, validation_split(digits, 0.2, seed=3)[1])
    assert not np.array_equal(val, validation_split(digits, 0.2, seed=4)[1])
    with pytest.raises(ValueError, match="validation fraction"):
        validation_split(digits, 1.5)


def test_without_validation_is_the_training_split_less_the_validation_images(digits):
    train, val = validation_split(digits, 0.2, seed=3)
    rest = without_validation(digits, 0.2, seed=3)
    assert len(rest.y_train) == len(train) == len(digits.y_train) - len(val) == 1078
    assert torch.equal(rest.x_train, digits.x_train[train]) and torch.equal(rest.y_train, digits.y_train[train])
    assert rest.x_test is digits.x_test and rest.y_test is digits.y_test
    # no image of the validation split is left in it (the digits have no duplicate images)
    flat = rest.x_train.flatten(1)
    assert not any(bool((flat == v).all(1).any()) for v in digits.x_train[val].flatten(1))


class _TestSplitRead(torch.Tensor):
    """A tensor that fails on any use: the test split of a data set no one may read."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the test split was read ({func})")


def _without_test_split(ds, n_train):
    poison = torch.zeros(4, 1, 8, 8).as_subclass(_TestSplitRead)
    return data.Dataset(
        ds.x_train[:n_train],
        ds.y_train[:n_train],
        poison,
        torch.zeros(4, dtype=torch.int64).as_subclass(_TestSplitRead),
        ds.mean,
        ds.std,
        ds.classes,
    )


def test_model_selection_never_reads_the_test_split(trained, digits):
    ds = _without_test_split(digits, 300)
    spiking = spiking_ann(trained, init_codes(trained, ds.x_train, 2))
    hist = fine_tune(spiking, ds, teacher=trained, epochs=2, lr=1e-2, progress=False)
    assert len(hist["validation_agreement"]) == 3  # before training and after each epoch
    sweep = list(
        fine_tune_windows(trained, ds, [1, 2], "sc-ttfs", epochs=1, calibration_images=64, progress=False)
    )
    assert [t for t, _, _ in sweep] == [1, 2]


def test_fine_tune_keeps_the_state_with_the_best_validation_agreement(trained, digits):
    ds = subset(digits, 400, 16)
    spiking = spiking_ann(trained, init_codes(trained, ds.x_train, 2))
    hist = fine_tune(
        spiking, ds, teacher=trained, epochs=3, lr=1e-2, layer_weight=1.0, seed=1, progress=False
    )
    assert all(np.isfinite(hist["loss"])) and len(hist["loss"]) == 3 * 3  # 320 training images / 128
    val_agreement = hist["validation_agreement"]
    best = max(val_agreement)
    sel = hist["selected_epoch"]
    assert val_agreement[sel] == best and all(val_agreement[e] < best for e in range(sel))
    # the returned network is the selected one: its validation agreement is the recorded one
    _, val = validation_split(ds, 0.2, seed=1)
    with torch.no_grad():
        out = spiking(ds.x_train[val])
    assert agreement(out, trained(ds.x_train[val]).detach())["agreement"] == val_agreement[sel]


def test_distillation_gives_finite_loss_and_nonzero_kernel_gradients(trained, digits):
    spiking = spiking_ann(trained, init_codes(trained, digits.x_train, 3))
    x = digits.x_train[:64]
    out = spiking(x)
    loss = F.mse_loss(out, trained(x).detach())
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in trainable_parameters(spiking).items() if n.endswith(".encode.alpha")]
    assert grads and all(g is not None and g.abs().item() > 0 for g in grads)


def test_fine_tune_resumes_where_an_uninterrupted_run_ends(trained, digits):
    ds = subset(digits, 300, 16)
    kwargs = {"teacher": trained, "epochs": 2, "lr": 1e-2, "seed": 2, "progress": False}
    full = spiking_ann(trained, init_codes(trained, ds.x_train, 2))
    start = copy.deepcopy(full)
    hist_full = fine_tune(full, ds, **kwargs)
    saved = []

    def stop_after_first(state):
        saved.append(copy.deepcopy(state))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fine_tune(copy.deepcopy(start), ds, checkpoint=stop_after_first, **kwargs)
    resumed = copy.deepcopy(start)
    hist = fine_tune(resumed, ds, resume_from=saved[0], **kwargs)
    assert hist == hist_full
    assert all(torch.equal(full.state_dict()[k], resumed.state_dict()[k]) for k in full.state_dict())


# --------------------------------------------------------------------------------------------
# Neighbouring windows, bias correction
# --------------------------------------------------------------------------------------------
def test_with_window_keeps_the_kernels_and_extends_the_tables(trained, digits):
    spiking = spiking_ann(trained, init_codes(trained, digits.x_train, 2))
    longer = with_window(spiking, 3)
    for (name, a), (_, b) in zip(spiking.named_modules(), longer.named_modules()):
        if isinstance(a, SpikingActivation):
            assert a.T == 2 and b.T == 3
            (ea, ca), (eb, cb) = a.tables(), b.tables()
            assert torch.equal(ea, eb[:2]) and torch.equal(ca, cb[:2]), name


def test_correct_biases_makes_the_first_layer_unbiased(trained, digits):
    x = digits.x_train[:256].double()
    ann64 = copy.deepcopy(trained).double()
    spiking = spiking_ann(ann64, init_codes(trained, x, 2))
    first = next(n for n, m in spiking.named_modules() if isinstance(m, SpikingActivation))

    def mean_gap(net):
        z = {}
        h = net.get_submodule(first).register_forward_hook(lambda m, a, out: z.__setitem__("z", out))
        a = {}
        g = ann64.get_submodule(first).register_forward_hook(lambda m, i, out: a.__setitem__("a", out))
        with torch.no_grad():
            net(x), ann64(x)
        h.remove(), g.remove()
        return (z["z"].mean((0, 2, 3)) - a["a"].mean((0, 2, 3))).abs().max().item(), a["a"].mean().item()

    before, scale = mean_gap(spiking)
    done = correct_biases(spiking, ann64, x)
    after, _ = mean_gap(spiking)
    assert isinstance(spiking.get_submodule(done[first]), nn.BatchNorm2d)  # the BN in front of it
    assert all(v is not None for v in done.values())
    assert after < before and after < 0.02 * scale


def test_bias_corrected_network_converts_exactly(trained, digits):
    spiking = bias_corrected(trained, digits.x_train, 2, "ttfs", max_images=128, dtype=torch.float64)
    ann, codes = export(spiking)
    snn = convert(ann, (1, 8, 8), code=codes)
    x = digits.x_test[:64].double()
    with torch.no_grad():
        np.testing.assert_allclose(snn.functional(x).output.numpy(), spiking(x).numpy(), atol=1e-9)
    ref = ann_outputs(trained, x)
    assert ref.dtype == torch.float64 and 0.0 <= agreement(snn.functional(x).output, ref)["agreement"] <= 1.0


def test_correct_biases_leaves_a_unit_the_ann_never_uses_alone():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    with torch.no_grad():
        ann[1].bias[0] = -100.0  # never active
    x = torch.rand(64, 1, 8, 8, dtype=torch.float64)
    spiking = spiking_ann(ann, init_codes(ann, x, 3))
    correct_biases(spiking, ann, x)
    assert spiking[1].bias[0].item() == -100.0
