"""SC-TTFS layers in a Brian2 user's own script: ordinary groups and monitors, plain ``run()``.

Each test is written as a Brian2 user would write it (the magic network of ``run()`` collects
the objects named in the test's namespace), and each guards against a trap that used to pass
silently: a potential set with ``G.v = x`` discarded at the first window boundary, a default
``StateMonitor`` racing the window update by name, monitors that plain ``run()`` never saw.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from brian2 import (
    EventMonitor,
    Hz,
    NeuronGroup,
    PoissonGroup,
    SpikeMonitor,
    StateMonitor,
    Synapses,
    defaultclock,
    ms,
    mV,
    prefs,
    restore,
    run,
    start_scope,
    store,
)

from scttfs_brian import PRESETS, SCTTFSCode
from scttfs_brian.brian.neurons import LayerMonitors, encode_layer, spiking_layer
from scttfs_brian.brian.plotting import plot_membrane, plot_raster

CODE = SCTTFSCode(6, *PRESETS["cifar10"])


@pytest.fixture(autouse=True)
def user_script():
    """What the top of a user's script says: numpy target, 1 ms steps, a fresh scope."""
    before = prefs.codegen.target, defaultclock.dt
    prefs.codegen.target = "numpy"
    defaultclock.dt = 1 * ms
    start_scope()
    yield
    prefs.codegen.target, defaultclock.dt = before
    plt.close("all")


def _first(monitor, N, T):
    out = np.full(N, -1)
    out[np.asarray(monitor.i[:])] = np.round(np.asarray(monitor.t[:] / ms)).astype(int) % T
    return out


@pytest.mark.parametrize("thresholds", ["table", "equation"])
def test_potentials_set_with_G_v_are_encoded_by_plain_run(thresholds):
    x = np.random.default_rng(1).uniform(-0.5, 4.0, 64)
    G = spiking_layer(
        64, CODE, name="layer", **({"thresholds": "equation"} if thresholds == "equation" else {})
    )
    G.v = x
    spikes = SpikeMonitor(G)
    calibrations = EventMonitor(G, "calibration")  # default schedule: right after the check
    run(CODE.T * ms)
    t_enc, t_cal = CODE.spike_times(x)
    np.testing.assert_array_equal(_first(spikes, 64, CODE.T), t_enc)
    np.testing.assert_array_equal(_first(calibrations, 64, CODE.T), t_cal)


def test_default_state_monitor_records_the_encoded_potential_whatever_the_names():
    """The window update runs before every object at ``start``: group names sorting before
    and after ``statemonitor`` see the same thing."""
    x = np.array([0.3, 1.7, 2.5])
    early = spiking_layer(3, CODE, name="a_layer")
    late = spiking_layer(3, CODE, name="z_layer")
    early.v_next = x  # moved to v by the window update at t = 0
    late.v_next = x
    m_early = StateMonitor(early, ("v", "theta_e"), record=True)
    m_late = StateMonitor(late, ("v", "theta_e"), record=True)
    run(2 * ms)
    np.testing.assert_array_equal(m_early.v[:, 0], x)
    np.testing.assert_array_equal(m_late.v[:, 0], x)
    np.testing.assert_array_equal(m_late.theta_e[0], CODE.table_e[:2])


def test_layer_monitors_record_under_plain_run():
    x = np.random.default_rng(2).uniform(0, 3, 20)
    G = spiking_layer(20, CODE, name="layer")
    G.v = x
    mon = LayerMonitors.attach(G)
    run(CODE.T * ms)
    t_enc, t_cal = CODE.spike_times(x)
    assert mon.spikes.num_spikes == np.sum(t_enc >= 0) > 0
    assert mon.calibrations.num_events == np.sum(t_cal >= 0) > 0
    np.testing.assert_array_equal(_first(mon.spikes, 20, CODE.T), t_enc)


def test_kernels_are_brian2_variables_under_plain_run():
    x = np.random.default_rng(3).uniform(0, 3, 50)
    G = spiking_layer(50, CODE, name="layer", thresholds="equation")
    G.v = x
    spikes = SpikeMonitor(G)
    store()
    run(CODE.T * ms)
    before = _first(spikes, 50, CODE.T)
    np.testing.assert_array_equal(before, CODE.spike_times(x)[0])
    restore()
    G.k_e = 2 * G.k_e[:]  # faster decay: spikes come earlier or not at all
    run(CODE.T * ms)
    after = _first(spikes, 50, CODE.T)
    np.testing.assert_array_equal(after, G.code.spike_times(x)[0])
    assert (after != before).any()


def test_poisson_input_sc_ttfs_lif_readout():
    """Poisson spikes -> SC-TTFS layer (decoded into v_next in window 0, encoded in window 1)
    -> LIF readout receiving w * theta of each spike."""
    T = CODE.T
    source = PoissonGroup(20, rates=400 * Hz)
    layer = spiking_layer(5, CODE, name="layer")
    feed = Synapses(source, layer, "w : 1", on_pre="v_next_post += w")
    feed.connect(p=0.5)
    feed.w = "0.1 * (1 + i % 3)"
    decoded = StateMonitor(layer, "v_next", record=True, when="end")
    spikes = SpikeMonitor(layer)
    calibrations = EventMonitor(layer, "calibration")
    readout = NeuronGroup(1, "dv/dt = -v / (20*ms) : 1", method="exact")
    out = Synapses(
        layer, readout, on_pre={"enc": "v_post += theta_e_pre", "cal": "v_post += theta_c_pre"},
        on_event={"enc": "spike", "cal": "calibration"},
    )  # fmt: skip
    out.connect()
    trace = StateMonitor(readout, "v", record=0)
    run(2 * T * ms)
    v_window0 = decoded.v_next[:, T - 1]  # end of window 0: what the layer encodes in window 1
    t_enc, t_cal = CODE.spike_times(v_window0)
    assert (t_enc >= 0).any()
    late = spikes.t[:] >= T * ms
    got = np.full(5, -1)
    got[spikes.i[:][late]] = np.round(spikes.t[:][late] / ms).astype(int) - T
    np.testing.assert_array_equal(got, t_enc)
    assert calibrations.num_events == np.sum(t_cal >= 0)
    assert trace.v[0].max() > 0


def _four_neurons(dt=1 * ms):
    x = np.array([2.2, 0.9, 0.45, 0.12])
    G = spiking_layer(4, CODE, name="layer", dt=dt)
    G.v = x
    mon = LayerMonitors.attach(G)
    state = StateMonitor(G, "v", record=True)
    run(CODE.T * dt)
    return x, mon, state


def test_plots_take_axes_none_and_draw_physical_time():
    x, mon, state = _four_neurons(dt=0.5 * ms)
    ax = plot_raster(mon.spikes, mon.calibrations)
    assert ax.get_xlabel() == "time (ms)"
    t_enc = CODE.spike_times(x)[0]
    np.testing.assert_array_equal(np.sort(ax.get_lines()[0].get_xdata()), np.sort(t_enc[t_enc >= 0]) * 0.5)
    ax = plot_membrane(state)
    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_xlim() == (0.0, CODE.T * 0.5)


def test_raster_of_two_layers_has_each_legend_entry_once():
    _, mon, _ = _four_neurons()
    ax = plot_raster(mon.spikes, mon.calibrations)
    plot_raster(mon.spikes, mon.calibrations, ax, offset=4)
    assert sorted(ax.get_legend_handles_labels()[1]) == ["calibration spike", "encoding spike"]


def test_membrane_spikes_have_the_colour_of_their_trace():
    x, mon, state = _four_neurons()
    ax = plot_membrane(state, spike_monitor=mon.spikes, calibration_monitor=mon.calibrations)
    labels = ax.get_legend_handles_labels()[1]
    assert len(labels) == len(set(labels))
    trace = {
        int(line.get_label()[2:-1]): line.get_color()
        for line in ax.get_lines()
        if line.get_label()[:2] == "v["
    }
    t_enc, t_cal = CODE.spike_times(x)
    for marker, times in (("o", t_enc), ("x", t_cal)):
        drawn = [line for line in ax.get_lines() if line.get_marker() == marker and len(line.get_xdata())]
        assert sorted(line.get_color() for line in drawn) == sorted(
            trace[i] for i in np.flatnonzero(times >= 0)
        )


def test_plot_membrane_in_the_layer_unit():
    G = spiking_layer(2, CODE, name="layer", unit=mV)
    G.v = [1.0, 0.5] * mV
    state = StateMonitor(G, "v", record=True)
    run(CODE.T * ms)
    ax = plot_membrane(state)
    assert ax.get_ylabel() == "v (mV)"
    assert np.isclose(ax.get_lines()[0].get_ydata()[0], 1.0)


def test_encode_layer_agrees_with_the_user_script():
    x = np.random.default_rng(5).uniform(-0.5, 4.0, 64)
    np.testing.assert_array_equal(np.stack(encode_layer(x, CODE)), np.stack(CODE.spike_times(x)))
