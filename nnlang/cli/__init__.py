"""The `nnlang` command: one table of verbs, each a thin call into the pipeline.

A verb is one :class:`Verb` row in :data:`VERBS`: its name, a one-line help, an example,
the function that declares its arguments and the function that runs it. The parser,
``nnlang VERB --help``, ``docs/cli.md`` (:mod:`nnlang.cli.doc`) and the tests all read
the table.

- :mod:`nnlang.cli.report`: exit codes and rendering diagnostics.
- :mod:`nnlang.cli.model`: the front-end verbs (check, summary, layers, graph).
- :mod:`nnlang.cli.run`: the runtime verbs (train, eval, predict, sample, export).
- :mod:`nnlang.cli.timing`: `nnlang time`.
- :mod:`nnlang.cli.editor`: `nnlang lsp`.

Exit codes: 0 success; 1 a mistake in a .nn file, its data or its run (diagnostics were
printed); 2 a usage error, or an internal error (an nnlang bug, reported as such); 3 the
environment failed (E7xx: no space, no permission, a path below a file, out of memory);
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nnlang.cli import editor, model, run, runs, summary, timing
from nnlang.cli.report import (
    EXIT_ENV,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_USER,
    fail,
)
from nnlang.diagnostics import InternalError, NNError, render
from nnlang.environment import environment_error

__all__ = [
    "EXIT_ENV",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_USER",
    "VERBS",
    "Verb",
    "build_parser",
    "main",
]


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Every verb, in the order `nnlang --help` and docs/cli.md list them.
VERBS: tuple[Verb, ...] = (
    Verb(
        "check",
        "parse, validate and shape-check .nn files (exit 1 on any error)",
        "nnlang check examples/digits_mlp.nn examples/residual.nn",
        model.check_args,
        model.cmd_check,
    ),
    Verb(
        "summary",
        "the layer table: kind, output shape, parameters and state, FLOPs, inputs; Keras-style totals",
        "nnlang summary examples/digits_cnn.nn --json",
        summary.summary_args,
        summary.cmd_summary,
    ),
    Verb(
        "layers",
        "the layer catalogue: every kind with its arguments",
        "nnlang layers conv",
        model.layers_args,
        model.cmd_layers,
    ),
    Verb(
        "graph",
        "draw the model's graph: Graphviz .dot, or a picture (.svg, .png), with Graphviz or without",
        "nnlang graph examples/residual.nn -o residual.svg",
        model.graph_args,
        model.cmd_graph,
    ),
    Verb(
        "fmt",
        "format .nn files in the canonical layout (whitespace only; comments kept); --check for CI",
        "nnlang fmt examples/ --check",
        model.fmt_args,
        model.cmd_fmt,
    ),
    Verb(
        "train",
        "train a model: progress, metrics.jsonl, checkpoints and curves in a run directory",
        "nnlang train examples/digits_mlp.nn --set epochs=10 --set optimizer.lr=3e-3",
        run.train_args,
        run.cmd_train,
    ),
    Verb(
        "eval",
        "evaluate a run's best checkpoint on the validation and test splits",
        "nnlang eval examples/digits_mlp.nn --run runs/digits_mlp --json",
        run.eval_args,
        run.cmd_eval,
    ),
    Verb(
        "predict",
        "run a trained model (or an exported StableHLO artifact) on inputs from a file",
        "nnlang predict examples/digits_mlp.nn --run runs/digits_mlp --input x.npy -o y.npy",
        run.predict_args,
        run.cmd_predict,
    ),
    Verb(
        "sample",
        "draw from a trained generative model: a GAN's noise, a VAE's prior, a language "
        "model's continuation of a prompt, an RBM's Gibbs chain",
        "nnlang sample examples/gan.nn --run runs/gan -n 100 -o digits.npy --seed 1",
        run.sample_args,
        run.cmd_sample,
    ),
    Verb(
        "runs",
        "compare runs: the settings that differ, best validation metrics, test metrics, time",
        "nnlang runs runs/",
        runs.runs_args,
        runs.cmd_runs,
    ),
    Verb(
        "curves",
        "draw the learning curves of several runs on shared axes into one PNG",
        "nnlang curves runs/digits_mlp runs/digits_mlp-2 -o curves.png",
        runs.curves_args,
        runs.cmd_curves,
    ),
    Verb(
        "time",
        "where the time goes: each layer's forward and backward, the model, the training "
        "step and epoch, with compile times and XLA's memory figures",
        "nnlang time examples/digits_cnn.nn --batch 64",
        timing.time_args,
        timing.cmd_time,
    ),
    Verb(
        "lsp",
        "the language server for editors (stdio): diagnostics as you type, hover with "
        "inferred shapes, completion of layers and attributes, go-to-definition",
        "nnlang lsp",
        editor.lsp_args,
        editor.cmd_lsp,
    ),
    Verb(
        "export",
        "export a trained model to StableHLO or ONNX, checked against the live model first",
        "nnlang export examples/digits_mlp.nn --run runs/digits_mlp --format stablehlo --out digits.hlo",
        run.export_args,
        run.cmd_export,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nnlang",
        description="Define, check, train and export neural networks written as .nn files.",
        epilog="exit codes: 0 ok, 1 a mistake in a .nn file or its data, 2 usage or internal error,\n"
        "3 the environment failed (no space, no permission, out of memory).\n"
        "run `nnlang VERB --help` for each verb's options and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"nnlang {_version()}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for v in VERBS:
        sp = sub.add_parser(
            v.name,
            help=v.help,
            description=v.help,
            epilog=f"example:\n  {v.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(fn=v.run)
        v.arguments(sp)
    return p


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nnlang")
    except Exception:
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    fmt = getattr(a, "format", "full")
    if hasattr(signal, "SIGXFSZ"):  # over `ulimit -f`: a write fails (EFBIG, E701), no kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        return int(a.fn(a))
    except NNError as e:
        if getattr(a, "json", False):  # `--json` verbs: stdout stays machine-readable
            print(json.dumps({"ok": False, "diagnostics": [d.to_json() for d in e.diagnostics]}))
        return fail(e, fmt if fmt in ("full", "concise", "json") else "full")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except InternalError as e:  # a bug, but one that knows where in the file it happened
        print(render(e.diagnostic(), e.sources), file=sys.stderr)
        if os.environ.get("NNLANG_DEBUG"):
            traceback.print_exc()
        else:
            print("  (set NNLANG_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        env = environment_error(exc)
        if env is not None:  # the machine's doing (disk, permissions, memory), not a bug
            if getattr(a, "json", False):
                print(json.dumps({"ok": False, "diagnostics": [env.to_json()]}))
            return fail(NNError(env), fmt if fmt in ("full", "concise", "json") else "full")
        print(
            "error[E999]: internal error — this is a bug in nnlang, not in your file.\n"
            "Please report it with the file and the command. Details:",
            file=sys.stderr,
        )
        if os.environ.get("NNLANG_DEBUG"):
            traceback.print_exc()
        else:
            etype, value, _ = sys.exc_info()
            print(
                f"  {etype.__name__ if etype else 'Error'}: {value}  (set NNLANG_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
        return EXIT_USAGE
