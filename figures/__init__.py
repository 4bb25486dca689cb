"""One script per figure or table of the paper (Feng et al. 2024); outputs go to ``figures/out/``.

Each module has ``main(outdir) -> list[pathlib.Path]`` and runs on its own
(``python figures/<name>.py``); ``python -m figures`` (``make figures``) runs them all.
"""

from pathlib import Path

#: Where the scripts write by default (git-ignored: outputs are regenerated).
OUT = Path(__file__).resolve().parent / "out"
#: The paper's Tables 2 and 3 as data.
PAPER_TABLES = Path(__file__).resolve().parent / "data" / "paper_tables.csv"

#: The scripts in the order ``python -m figures`` runs them.
SCRIPTS = ("fig1b_response", "fig2a_spike_trains", "fig2_neuron_dynamics", "fig3_fig4_energy", "tables_2_3")
