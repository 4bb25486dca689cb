"""The ``scttfs`` command: ``demo``, ``train``, ``convert`` and ``simulate``.

Argument parsing and thin commands; what each command does lives in :mod:`scttfs_brian.pipeline`
(the run directory, the stages, the demo, the reports).

Every command writes into a **run directory** (``--run-dir``, default ``runs/<name>``):

* ``config.json``: the resolved configuration of each command run there (one section per command);
* ``checkpoints/``: training states, written after every epoch (``torch.save``; read back with
  ``torch.load(..., weights_only=True)``);
* the outputs of each stage (``ann.pt`` state_dicts, ``snn-*.npz`` networks, ``*.json`` results),
  each written atomically (a temporary file, then ``os.replace``), so a file that exists is complete;
* ``metrics.json``, ``report.md`` and ``figures/``; ``log.txt`` lists what each stage did.

``--resume`` continues an interrupted run: a stage whose output exists is skipped (``log.txt`` says
"skipped"), training resumes from its last finished epoch, and the configuration must match the
one stored. Without ``--resume`` every stage runs again and overwrites its outputs.

Only one command writes into a run directory at a time: a second one is refused at once, naming
the first's pid and command. Every output records what it was made from (``provenance.json``): a
command never overwrites an output another command made with other settings, and ``simulate``
refuses a network converted from an ANN that was retrained since.

Exit codes: 0 success, 2 a usage error (bad arguments, missing or damaged data or run files, an
output another command made), 1 every other failure (a failed check, a busy run directory, a full
disk, a damaged input file), 130 interrupted (resume with ``--resume``). One function,
:func:`exit_code`, maps every failure to a one-line message and its code; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import errno
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from .pipeline import DATASETS, KINDS, MODELS, CheckFailed, DemoConfig, Run, UsageError
from .pipeline.errors import RunBusy

__all__ = ["main", "build_parser", "exit_code", "UsageError", "CheckFailed"]

#: The demo's defaults, shown in ``--help``.
DEMO = DemoConfig()


def _run_dir(args: argparse.Namespace, default_name: str) -> Path:
    return Path(args.run_dir) if args.run_dir else Path("runs") / (args.name or default_name)


def _open_run(args: argparse.Namespace, default_name: str, command: str) -> Run:
    """The run directory of this command (every command opens it here)."""
    return Run(_run_dir(args, default_name), resume=args.resume, progress=not args.no_progress, command=command,
               command_line=getattr(args, "command_line", None))  # fmt: skip


def _threads(args: argparse.Namespace):
    from .pipeline.stages import torch_threads

    return torch_threads(args.threads)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """Train the digits CNN, convert it with SC-TTFS and TTFS (kernels from activation statistics,
    and bias-corrected), fine-tune kernels, BN and weights as the multi-seed study does, simulate the test split
    in Brian2, check it spike for spike against the torch twin, and report agreement with the ANN,
    accuracy, latency, spikes and energy, with the agreement at T next to the study's interval."""
    from .pipeline import run_demo

    options = ("epochs", "T", "fine_tune_epochs", "fine_tune_lr", "fine_tune_kernel_lr", "images", "copies",
               "target", "seed", "sweep", "fine_tune_sweep", "study_results")  # fmt: skip
    try:
        config = DemoConfig.create(quick=args.quick, **{k: getattr(args, k) for k in options})
    except ValueError as err:
        raise UsageError(str(err)) from None
    _check_target(config.target)
    with _open_run(args, "demo", "demo") as run, _threads(args):
        outcome = run_demo(config, run)
    report, metrics, fig1, fig2 = outcome.files
    print(f"\n{outcome.text}\n")
    print(f"Wrote {report}, {metrics},\n      {fig1},\n      {fig2}")
    print(f"Total {outcome.seconds:.0f} s")
    if not outcome.agreement.exact:
        raise CheckFailed(outcome.verdict)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train an ANN -> ann.pt (state_dict), metrics.json."""
    from .pipeline.commands import train
    from .pipeline.stages import load_dataset

    model = args.model or ("digits-cnn" if args.dataset == "digits" else "vgg16")
    cfg = {"dataset": args.dataset, "data_root": args.data_root, "model": model, "model_kwargs": {},
           "epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer, "batch_size": args.batch_size,
           "weight_decay": args.weight_decay, "seed": args.seed}  # fmt: skip
    ds = load_dataset(cfg["dataset"], cfg["data_root"])  # before creating the run directory
    with _open_run(args, f"{cfg['model']}-{cfg['dataset']}", "train") as run, _threads(args):
        acc = train(run, cfg, ds)
    print(f"Wrote {run.path('ann.pt')} (ANN test accuracy {100 * acc:.2f} %)")
    return 0


def _trained_run(args: argparse.Namespace, command: str):
    from .pipeline.stages import open_trained_run

    return open_trained_run(_run_dir(args, "digits-cnn-digits"), command=command, data_root=args.data_root,
                            resume=args.resume, progress=not args.no_progress,
                            command_line=getattr(args, "command_line", None))  # fmt: skip


def _check_target(target: str | None) -> None:
    """Refuse a Brian2 target that cannot run here before any work is done."""
    if target == "cuda_standalone":
        from .brian.devices import cuda_available

        ok, reason = cuda_available()
        if not ok:
            raise UsageError(
                f"--target cuda_standalone cannot run here: {reason}; use --target cpp_standalone"
            )


def cmd_convert(args: argparse.Namespace) -> int:
    """Kernels from activations (+ optional fine-tuning) -> snn-<kind>-T<T>[-ft].npz."""
    run, ds, ann, tcfg = _trained_run(args, "convert")
    with run:
        return _convert(args, run, ds, ann, tcfg)


def _convert(args: argparse.Namespace, run: Run, ds, ann, tcfg: dict) -> int:
    from .pipeline.commands import convert_networks

    cfg = {"T": args.T, "kind": args.kind, "calibration_images": args.calibration_images,
           "fine_tune_epochs": args.fine_tune_epochs, "fine_tune_lr": args.fine_tune_lr,
           "fine_tune_kernel_lr": args.fine_tune_kernel_lr, "fine_tune_batch_size": args.batch_size,
           "seed": tcfg["seed"]}  # fmt: skip
    with _threads(args):
        results = convert_networks(run, ann, ds, cfg, KINDS if args.kind == "both" else (args.kind,))
    for label, r in results.items():
        print(
            f"{label}: accuracy {100 * r['accuracy']:.2f} %, latency {r['latency_steps']} steps, "
            f"{r['spikes_per_image']:.0f} spikes/image -> {run.path(f'snn-{label}.npz')}"
        )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a converted network in Brian2 or the torch twin -> sim-*.npz, metrics.json."""
    _check_target(args.target)
    run, ds, _ann, _ = _trained_run(args, "simulate")
    with run:
        return _simulate(args, run, ds)


def _simulate(args: argparse.Namespace, run: Run, ds) -> int:
    from .pipeline.commands import simulate_network
    from .pipeline.stages import network_label

    cfg = {"backend": args.backend, "images": args.images, "copies": args.copies, "target": args.target,
           "check": args.check}  # fmt: skip
    from .pipeline.cluster import client_from_options

    with _threads(args), client_from_options(args.scheduler, args.workers) as client:
        out, agreement = simulate_network(
            run, ds, cfg, kind=args.kind, T=args.T, fine_tuned=args.fine_tuned, distributed=client
        )
    label = network_label(args.kind, args.T, args.fine_tuned)
    print(
        f"{label} on {args.backend}: accuracy {100 * out['accuracy']:.2f} % on {out['images']} images, "
        f"latency {out['latency_steps']} steps, {out['spikes_per_image']:.0f} spikes/image; wrote {out['figure']}"
    )
    if agreement is not None:
        print(
            "Brian2 and the torch twin agree spike for spike"
            if agreement.exact
            else "MISMATCH with the torch twin"
        )
        if not agreement.exact:
            raise CheckFailed(f"Brian2 and the torch twin disagree: {agreement}")
    return 0


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _common(p: argparse.ArgumentParser, default_name: str) -> None:
    g = p.add_argument_group("run directory")
    g.add_argument(
        "--run-dir", help=f"where everything is written (default: runs/<name>, name {default_name!r})"
    )
    g.add_argument("--name", help="name of the run under runs/ when --run-dir is not given")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: skip stages whose output exists, resume training "
        "from the last epoch",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="show the traceback of a failure (default: one line)")
    g.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch threads (default 1: these small networks gain little from more, and on a busy "
        "machine threads waiting for each other made training 5x slower)",
    )


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole pipeline on digits (train, convert, fine-tune, Brian2, report)",
        description=cmd_demo.__doc__ + " Writes report.md, metrics.json and figures/ into the run "
        "directory (default runs/demo).",
    )
    _common(p, "demo")
    p.add_argument(
        "--quick", action="store_true", help="small CNN, few epochs and images (a smoke test, ~30 s)"
    )
    p.add_argument("--T", type=_positive_int, help=f"window length in steps (default {DEMO.T})")
    p.add_argument(
        "--sweep",
        type=_positive_int,
        nargs="+",
        metavar="T",
        help=f"windows of the agreement-vs-T sweep of the conversions without fine-tuning (default {DEMO.sweep})",
    )
    p.add_argument(
        "--fine-tune-sweep",
        type=_positive_int,
        nargs="*",
        metavar="T",
        help="windows at which both codes are fine-tuned, in order, each starting from the one before; each "
        f"one of the --sweep (default: the study's windows up to T, {' '.join(map(str, DEMO.fine_tune_sweep['sc-ttfs']))} "
        "for T = 3, those in --sweep; T is always included)",
    )
    p.add_argument("--epochs", type=_positive_int, help=f"ANN training epochs (default {DEMO.epochs})")
    p.add_argument(
        "--fine-tune-epochs",
        type=_positive_int,
        help=f"fine-tuning epochs per window (default {DEMO.fine_tune_epochs}, the study's)",
    )
    p.add_argument(
        "--fine-tune-lr",
        type=_positive_float,
        help=f"initial fine-tuning learning rate of BatchNorm (default {DEMO.fine_tune_lr}, the study's; the "
        "paper: 1e-5 over 100 epochs)",
    )
    p.add_argument(
        "--fine-tune-kernel-lr",
        type=_positive_float,
        help=f"learning rate of the kernels' alpha, beta, k (default {DEMO.fine_tune_kernel_lr}, the study's; see "
        "scttfs_brian.training on why it is smaller)",
    )
    p.add_argument("--images", type=_positive_int, help="test images to simulate (default: all 450)")
    p.add_argument("--copies", type=_positive_int, help=f"Brian2 network copies (default {DEMO.copies})")
    p.add_argument(
        "--target",
        choices=("numpy", "cython", "cpp_standalone", "cuda_standalone"),
        help="Brian2 code generation target (default numpy)",
    )
    p.add_argument("--seed", type=int, help="seed of the weights and the shuffling (default 0)")
    p.add_argument(
        "--study-results",
        metavar="JSON",
        help="the multi-seed study's results to compare with (default analysis/results/digits_study.json "
        "of the repository)",
    )
    p.set_defaults(func=cmd_demo)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an ANN (digits, CIFAR-10/100)", description=cmd_train.__doc__)
    _common(p, "<model>-<dataset>")
    p.add_argument("--dataset", choices=DATASETS, default="digits", help="data set (default digits)")
    p.add_argument("--data-root", help="folder with the CIFAR archive (default ./data); digits needs none")
    p.add_argument("--model", choices=MODELS, help="network (default digits-cnn for digits, vgg16 for CIFAR)")
    p.add_argument("--epochs", type=_positive_int, default=20, help="epochs (default 20)")
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="initial learning rate (default 1e-2)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer (default adam)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.set_defaults(func=cmd_train)


def _add_convert(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a trained ANN to SC-TTFS / TTFS (optionally fine-tuned)",
        description=cmd_convert.__doc__ + " Reads ann.pt and config.json of a `scttfs train` run.",
    )
    _common(p, "digits-cnn-digits")
    p.add_argument("--data-root", help="folder with the CIFAR archive (default: the one used in training)")
    p.add_argument("--T", type=_positive_int, default=4, help="window length in steps (default 4)")
    p.add_argument("--kind", choices=(*KINDS, "both"), default="sc-ttfs", help="code (default sc-ttfs)")
    p.add_argument(
        "--calibration-images",
        type=_positive_int,
        default=512,
        help="training images whose activations set the kernels (default 512)",
    )
    p.add_argument(
        "--fine-tune-epochs",
        type=_nonnegative_int,
        default=0,
        help="epochs of kernel + BN fine-tuning, 0 = none (default 0)",
    )
    p.add_argument(
        "--fine-tune-lr", type=_positive_float, default=1e-2, help="BatchNorm learning rate (default 1e-2)"
    )
    p.add_argument(
        "--fine-tune-kernel-lr",
        type=_positive_float,
        default=1e-3,
        help="kernel learning rate (default 1e-3)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=128, help="fine-tuning batch size (default 128)"
    )
    p.set_defaults(func=cmd_convert)


def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a converted network (Brian2 or the torch twin)",
        description=cmd_simulate.__doc__,
    )
    _common(p, "digits-cnn-digits")
    p.add_argument("--data-root", help="folder with the CIFAR archive (default: the one used in training)")
    p.add_argument("--backend", choices=("brian2", "torch"), default="brian2", help="engine (default brian2)")
    p.add_argument(
        "--kind", choices=KINDS, default="sc-ttfs", help="which converted network (default sc-ttfs)"
    )
    p.add_argument("--T", type=_positive_int, default=4, help="its window length (default 4)")
    p.add_argument("--fine-tuned", action="store_true", help="the fine-tuned network (snn-*-ft.npz)")
    p.add_argument("--images", type=_positive_int, help="number of test images (default: all)")
    p.add_argument(
        "--copies",
        type=_positive_int,
        default=8,
        help="Brian2 network copies (default 8: fastest for the digits CNN, measured)",
    )
    p.add_argument(
        "--target",
        choices=("numpy", "cython", "cpp_standalone", "cuda_standalone"),
        default="numpy",
        help="Brian2 target (default numpy)",
    )
    p.add_argument(
        "--check", action="store_true", help="compare spike for spike with the torch twin (brian2)"
    )
    from .pipeline.cluster import add_cluster_arguments

    add_cluster_arguments(p)  # --scheduler ADDRESS | --workers N: shard the Brian2 run (docs/cluster.md)
    p.set_defaults(func=cmd_simulate)


def cmd_study(args: argparse.Namespace) -> int:
    from .pipeline import study

    study.run_from_args(args, args.command_line)
    return 0


def _add_study(sub) -> None:
    from .pipeline import study

    p = sub.add_parser(
        "study",
        help="the multi-seed study: agreement with the ANN over seeds, codes and T (writes JSON + markdown)",
        description="Train the digits ANN for each seed, convert it (SC-TTFS and TTFS; kernels from activations, "
        "bias-corrected, fine-tuned) over a sweep of T, check one network per seed in Brian2 spike for spike, "
        "and write the runs and a summary with intervals. Each ANN, conversion, fine-tuning sweep and Brian2 check "
        "is a Dask task (a local cluster of 2 processes by default). Run the same command again to resume where it "
        "stopped.",
    )
    study.add_arguments(p)  # --scheduler ADDRESS | --workers N (default 2): where its tasks run
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure (default: one line)")
    p.set_defaults(func=cmd_study)


#: The subcommands: one function each adds its parser (a new command is one more entry).
COMMANDS = (_add_demo, _add_train, _add_convert, _add_simulate, _add_study)
#: Their names.
COMMAND_NAMES = ("demo", "train", "convert", "simulate", "study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scttfs",
        description="SC-TTFS spiking networks (Feng et al. 2024) in Brian2 with a torch twin: train an ANN, "
        "convert it, fine-tune the kernels, simulate.",
        epilog="Run `scttfs <command> --help` for the options of a command. `scttfs demo` runs everything on "
        "the bundled digits.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


# --------------------------------------------------------------------------------------------
# Failures: the one place that turns an exception into a message and an exit code
# --------------------------------------------------------------------------------------------
def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from (Brian2 wraps the original in a
    ``BrianObjectException``)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _os_message(err: OSError) -> str:
    where = f" {err.filename}" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return f"the disk is full (writing{where}); free some space and continue with --resume"
    if err.errno == errno.EROFS:
        return f"read-only file system (writing{where}); pass a writable --run-dir"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied:{where or ' ' + _first_line(err)}; pass a --run-dir you can write"
    return f"{err.strerror or _first_line(err)}{':' + where if where else ''}"


def _message(err: BaseException) -> str:
    """One line: what went wrong (Brian2's wrapper replaced by the error it wraps)."""
    if any(c.__name__ == "BrianObjectException" for c in type(err).__mro__):
        inner = [
            e for e in _chain(err) if not any(c.__name__ == "BrianObjectException" for c in type(e).__mro__)
        ]
        if inner:
            return f"Brian2 failed: {type(inner[0]).__name__}: {_first_line(inner[0])}"
    if isinstance(err, OSError):
        return _os_message(err)
    if isinstance(err, MemoryError):
        return (
            "out of memory; simulate fewer images (--images) or fewer copies (--copies), or use a smaller T"
        )
    if isinstance(err, (ValueError, TypeError, LookupError, RuntimeError)) or type(err).__name__ in (
        "UnpicklingError", "BadZipFile", "JSONDecodeError"):  # fmt: skip
        return _first_line(err)
    return f"unexpected {type(err).__name__}: {_first_line(err)} (rerun with --debug for the traceback)"


def exit_code(args: argparse.Namespace, err: BaseException, *, interrupted: bool = False) -> int | None:
    """Print the one-line message for ``err`` raised by command ``args.command`` and return the exit
    code; None for what is not a failure of the command (``SystemExit``: ``main`` re-raises it).

    130: interrupted (``err`` is, or was raised from, a ``KeyboardInterrupt``, or Ctrl-C was
    pressed during the command: ``interrupted``); 2: a usage error; 1: anything else."""
    prog = f"scttfs {args.command}"
    if interrupted or any(isinstance(e, KeyboardInterrupt) for e in _chain(err)):
        if args.command == "study":  # the study resumes from its point files by itself
            how = "run the same command again: finished points are kept"
        else:
            hint = f" --run-dir {args.run_dir}" if getattr(args, "run_dir", None) else ""
            how = f"continue with `scttfs {args.command}{hint} --resume` (and the same options)"
        print(f"\n{prog}: interrupted; {how}", file=sys.stderr)
        return 130
    if isinstance(err, UsageError):
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if isinstance(err, CheckFailed):
        print(f"{prog}: check failed: {err}", file=sys.stderr)
        return 1
    if isinstance(err, RunBusy):
        print(f"{prog}: busy: {err}", file=sys.stderr)
        return 1
    if isinstance(err, Exception):
        print(f"{prog}: error: {_message(err)}", file=sys.stderr)
        return 1
    return None


@contextlib.contextmanager
def _interrupts_recorded() -> Iterator[list]:
    """Record every Ctrl-C (SIGINT) during the command, whatever handles it afterwards (Brian2's
    handler, or one that swallows it): an interrupted command never exits 0."""
    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.getsignal(signal.SIGINT)

    def record(signum, frame):
        seen.append(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def unraisable(info):
        # a KeyboardInterrupt raised inside a __del__ or weakref callback is printed ("Exception
        # ignored in ...", a traceback) and dropped by Python: deliver Ctrl-C again instead
        if isinstance(info.exc_value, KeyboardInterrupt):  # (from another thread: not inside this hook)
            timers.append(threading.Timer(0.01, _thread.interrupt_main))
            timers[-1].start()
        else:
            hook(info)

    hook, timers = sys.unraisablehook, []
    signal.signal(signal.SIGINT, record)
    sys.unraisablehook = unraisable
    try:
        yield seen
    finally:
        for timer in timers:
            timer.cancel()
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scttfs`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and argparse errors (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    args.command_line = " ".join(["scttfs", *argv])
    with _interrupts_recorded() as interrupts:
        try:
            code = args.func(args)
        except BaseException as err:
            if args.debug or isinstance(err, (SystemExit, GeneratorExit)):
                raise
            code = exit_code(args, err, interrupted=bool(interrupts))
            if code is None:  # pragma: no cover - exit_code maps every Exception
                raise
            return code
    if interrupts:  # Ctrl-C was swallowed somewhere: the outputs may be partial
        return exit_code(args, KeyboardInterrupt(), interrupted=True)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
