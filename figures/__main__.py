"""``python -m figures`` (``make figures``): run every figure script; outputs in ``figures/out/``."""

from __future__ import annotations

import argparse
import importlib
import time

from figures import OUT, SCRIPTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures", description=__doc__)
    parser.add_argument("--out", default=str(OUT), help=f"output directory (default {OUT})")
    parser.add_argument(
        "--metrics", default=None, help="metrics JSON of `make demo` for the digits row of tables_2_3"
    )
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    args = parser.parse_args(argv)
    for name in args.only or SCRIPTS:
        module = importlib.import_module(f"figures.{name}")
        start = time.perf_counter()
        kwargs = {"metrics": args.metrics} if name == "tables_2_3" else {}
        paths = module.main(args.out, **kwargs)
        print(f"{name}: {', '.join(str(p) for p in paths)} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
