"""Every figure script writes non-blank PNG and PDF files; the tables script writes markdown."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURE_SCRIPTS = ("fig1b_response", "fig2a_spike_trains", "fig2_neuron_dynamics", "fig3_fig4_energy")


def _module(name):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"figures.{name}")


@pytest.mark.parametrize("name", FIGURE_SCRIPTS)
def test_figure_script_writes_png_and_pdf(name, tmp_path, capsys):
    paths = _module(name).main(tmp_path)
    if name == "fig2_neuron_dynamics":  # the figure checks Brian2 against coding.py and says so
        assert "Brian2 agrees with coding.py: True" in capsys.readouterr().out
    suffixes = sorted(p.suffix for p in paths)
    assert suffixes.count(".png") == suffixes.count(".pdf") >= 1
    for path in paths:
        assert path.is_file() and path.parent == tmp_path
        assert path.stat().st_size > 5_000, f"{path.name} is suspiciously small"
        if path.suffix == ".png":
            pixels = matplotlib.image.imread(path)
            assert pixels.std() > 0.01, f"{path.name} looks blank"
            rgb = np.round(pixels[..., :3] * 255).astype(np.uint32)
            colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
            assert colours.size > 10, f"{path.name} has only {colours.size} colours"
        else:
            assert path.read_bytes().startswith(b"%PDF")


def test_tables_without_metrics_print_how_to_get_the_digits_row(tmp_path, capsys):
    (path,) = _module("tables_2_3").main(tmp_path, metrics=tmp_path / "missing.json")
    text = path.read_text()
    assert "Table 2" in text and "Table 3" in text
    assert "| VGG16 | TTFS(2020) [21] * | — | 91.43 | — | 680 | 0.069 |" in text
    assert "| VGG16 | SC-TTFS | 77.74 | 77.75 | -0.01 | 126 | 0.210 |" in text
    assert "(run `make demo` to add the digits row)" in text
    assert "(run `make demo`" in capsys.readouterr().out


def test_tables_with_metrics_add_a_labelled_digits_row(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            {"ann_accuracy": 0.98, "snn_accuracy": 0.975, "latency_steps": 42, "spikes_per_image": 1234.5}
        )
    )
    (path,) = _module("tables_2_3").main(tmp_path, metrics=metrics)
    text = path.read_text()
    assert "different data set" in text
    assert "| digits 8x8 | DigitsCNN | SC-TTFS | 98 | 97.5 | 0.5 | 42 | 1234 |" in text


def test_tables_read_the_demo_metrics_format(tmp_path):
    """`scttfs demo` writes one entry per method; each becomes a labelled row."""
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            {
                "dataset": "digits", "T": 3, "ann_accuracy": 0.9888888888888889,
                "snn_accuracy": {"sc-ttfs+ft": 0.9888888888888889, "ttfs+ft@T8": 0.98},
                "latency_steps": {"sc-ttfs+ft": 18, "ttfs+ft@T8": 48},
                "spikes_per_image": {"sc-ttfs+ft": 2992.93, "ttfs+ft@T8": 1852.36},
            }
        )
    )  # fmt: skip
    (path,) = _module("tables_2_3").main(tmp_path, metrics=metrics)
    text = path.read_text()
    assert "| digits | DigitsCNN | SC-TTFS fine-tuned, T=3 | 98.89 | 98.89 | 0 | 18 | 2993 |" in text
    assert "| digits | DigitsCNN | TTFS fine-tuned, T=8 | 98.89 | 98 | 0.8889 | 48 | 1852 |" in text


def test_python_m_figures_lists_the_scripts():
    out = subprocess.run(
        [sys.executable, "-m", "figures", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "--only" in out and "--metrics" in out


def test_plot_functions_take_axes_none_and_return_axes():
    import brian2 as b2
    import matplotlib.pyplot as plt

    from scttfs_brian import PRESETS, SCTTFSCode
    from scttfs_brian.brian.neurons import encode_layer
    from scttfs_brian.brian.plotting import plot_membrane, plot_raster, plot_response

    code = SCTTFSCode(4, *PRESETS["cifar10"])
    try:
        ax = plot_response(code, 3.0)
        assert ax.get_lines() and ax.get_xlabel().startswith("membrane potential")
        t_enc, t_cal, mon = encode_layer([0.2, 0.9, 2.5], code, return_monitors=True)
        ax = plot_raster(mon.spikes, mon.calibrations)
        enc_line, cal_line = ax.get_lines()[:2]
        np.testing.assert_array_equal(enc_line.get_xdata(), np.sort(t_enc[t_enc >= 0]))
        assert len(cal_line.get_xdata()) == int(np.sum(t_cal >= 0))
        G = mon.spikes.source
        state = b2.StateMonitor(G, "v", record=True)
        with pytest.raises(ValueError, match="recorded nothing"):
            plot_membrane(state, code, 0)
    finally:
        plt.close("all")


def test_energy_figures_state_the_normalization_and_show_both_readings():
    from scttfs_brian.analysis import load_method_results

    mod = _module("fig3_fig4_energy")
    results = load_method_results(ROOT / "figures" / "data" / "paper_tables.csv")
    fig = mod.energy_figure(results, 2, 3)
    assert "does not state its normalization" in fig._suptitle.get_text()
    assert "1 - 108/680 = 84.1 %" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes]
    for reading in mod.READINGS:
        assert sum(f"reading '{reading}'" in t for t in titles) == 2  # one panel per platform
    assert any("83.4 % less energy" in t for t in titles) and any("84.1 % less energy" in t for t in titles)


def test_fig2a_draws_the_spike_times_of_the_rule():
    import matplotlib.pyplot as plt

    from scttfs_brian import PRESETS, SCTTFSCode

    mod = _module("fig2a_spike_trains")
    code = SCTTFSCode(6, *PRESETS["cifar10"])
    v = np.asarray(mod.POTENTIALS)
    fig, ax = plt.subplots()
    try:
        mod.spike_train_axes(ax, code, v, "SC-TTFS")
        t_enc, t_cal = code.spike_times(v)
        bars = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linewidth() == 2.4]  # the spikes
        expected = sorted(list(t_enc[t_enc >= 0]) + [t + 0.12 for t in t_cal[t_cal >= 0]])
        assert sorted(bars) == pytest.approx(expected)
    finally:
        plt.close(fig)
