"""The runtime verbs of the `nnlang` command: train, eval, predict, sample, export.

Kept apart from :mod:`nnlang.cli.model` so that `nnlang check` never imports JAX: the
training, export and artifact modules are imported inside each verb. May import
everything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.cli.report import EXIT_INTERRUPTED, EXIT_OK, add_data_root_flag, data_root_of
from nnlang.diagnostics import Diagnostic, NNError
from nnlang.graph.checks import add_budget_flags, budget_of


def cmd_train(a: argparse.Namespace) -> int:
    from nnlang.train.progress import starting

    starting(f"{a.file}: starting JAX ...", not a.json and not a.quiet)  # before its import
    from nnlang.train import hosts
    from nnlang.train.run import train

    hosts.start(a.coordinator, a.num_processes, a.process_id, a.distributed)
    sets = list(a.set or [])
    if a.devices is not None:  # the `devices` setting (recorded with the overrides)
        sets.append(f"devices={a.devices}")
    root = data_root_of(a)
    if root is not None:  # recorded with the run's overrides: eval and predict read there too
        sets.append(f"data_root={json.dumps(root)}")
    r = train(
        a.file,
        model=a.model,
        sets=sets,
        out=a.out,
        resume=a.resume,
        progress=not a.json and not a.quiet and hosts.primary(),
        cache=not a.no_cache,
        budget=budget_of(a),
        curves=a.curves,
    )
    if r.stopped == "interrupted":
        flags = " ".join(f"--set {s}" for s in a.set or [])
        if a.devices is not None:
            flags = f"{flags} --devices {a.devices}".strip()
        if root is not None:
            flags = f"{flags} --data-root {root}".strip()
        try:
            print(
                f"\ninterrupted: checkpoint written at step {r.steps} in {r.run_dir}/checkpoints\n"
                f"resume with: nnlang train {a.file} {flags + ' ' if flags else ''}--out {r.run_dir} --resume",
                file=sys.stderr,
            )
        except OSError:  # SIGHUP: the terminal that would show it is gone
            pass
        return EXIT_INTERRUPTED
    skipped = sum(int(h.get("skipped", 0)) for h in r.history)
    if a.json:
        print(
            json.dumps(
                {
                    "run": str(r.run_dir),
                    "stopped": r.stopped,
                    "test": r.test,
                    "epochs": len(r.history),
                    "steps": r.steps,
                    **({"skipped": skipped} if skipped else {}),
                    "train_seconds": round(r.train_seconds, 3),
                    "devices": r.extra.get("devices", 1),
                    "best": r.extra.get("best"),
                },
                indent=2,
            )
        )
    else:
        split = r.test.get("split", "test")
        shown = " ".join(f"{k}={v:.4f}" for k, v in r.test.items() if k != "split")
        best = r.extra.get("best")
        n = r.extra.get("devices", 1)
        on = f" on {n} devices" if n > 1 else ""
        chosen = f"; weights of epoch {best['epoch']}: {best['why']}" if best else ""
        print(
            f"{split}: {shown}  ({r.steps} steps{f', {skipped} skipped' if skipped else ''}, "
            f"{r.train_seconds:.1f}s training{on}{chosen}) -> {r.run_dir}"
        )
    return EXIT_OK


def cmd_eval(a: argparse.Namespace) -> int:
    from nnlang.train.trained import TrainedRun

    res = TrainedRun.open(a.file, a.run, a.model).evaluate()
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        for split, m in res.items():
            print(f"{split}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items()))
    return 0


def read_input(path: str, names: list[str]) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise NNError(Diagnostic("E504", f"input file `{path}` does not exist"))
    try:
        if p.suffix == ".npy":
            return (
                {names[0]: np.load(p, allow_pickle=False)} if len(names) == 1 else _too_many(names)
            )
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if p.suffix == ".csv":
            arr = np.loadtxt(p, delimiter=",", dtype=np.float32, ndmin=2)
            return {names[0]: arr} if len(names) == 1 else _too_many(names)
    except ValueError as e:
        raise NNError(Diagnostic("E504", f"cannot read `{path}`: {e}")) from None
    raise NNError(
        Diagnostic(
            "E504", f"`{path}`: input files are .npy, .npz (one array per model input) or .csv"
        )
    )


def _too_many(names: list[str]) -> dict[str, np.ndarray]:
    raise NNError(
        Diagnostic(
            "E504",
            f"the model has {len(names)} inputs ({', '.join(names)}); pass an .npz with one array per input",
        )
    )


def write_output(path: str, outputs: dict[str, np.ndarray], force: bool = True) -> None:
    import io

    from nnlang.fsio import atomic_write_bytes

    if len(outputs) > 1 and not path.endswith(".npz"):
        raise NNError(
            Diagnostic(
                "E504",
                f"the model has {len(outputs)} outputs ({', '.join(outputs)}); "
                "write them to an .npz file: -o out.npz",
            )
        )
    buf = io.BytesIO()
    if path.endswith(".npz"):
        np.savez(buf, **outputs)
    else:
        np.save(buf, next(iter(outputs.values())))
    atomic_write_bytes(path, buf.getvalue())


def cmd_predict(a: argparse.Namespace) -> int:
    if a.artifact:
        from nnlang.export.artifact import load_artifact

        art = load_artifact(a.artifact)
        outputs = art.run(read_input(a.input, art.input_names))
    else:
        if not a.file or not a.run:
            raise NNError(
                Diagnostic("E504", "predict needs FILE and --run DIR, or --artifact PATH")
            )
        from nnlang.train.trained import TrainedRun

        run = TrainedRun.open(a.file, a.run, a.model)
        if not Path(a.input).exists():
            raise NNError(Diagnostic("E504", f"input file `{a.input}` does not exist"))
        read = run.read_like_training(Path(a.input))  # the training source's reader
        inputs, labels = read if read is not None else (read_input(a.input, run.input_names), {})
        outputs = run.predict(inputs)
        if _write_classes(a.output, outputs, run, labels):
            return 0
    write_output(a.output, outputs)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in outputs.items())
    print(f"wrote {a.output}: {shapes}")
    return 0


def _write_classes(path: str, outputs: dict[str, np.ndarray], run: Any, labels: Any) -> bool:
    """-o out.csv / out.json for a classifier: each row's class name and probabilities
    (softmax of the logits), and the accuracy when the input had labels. False (nothing
    written) for other outputs or extensions."""
    from nnlang.fsio import atomic_write_text
    from nnlang.train.data.predict import probabilities
    from nnlang.train.rundir import read_settings

    if not path.endswith((".csv", ".json")):
        return False
    meta = read_settings(run.run_dir).get("data", {}).get("meta", {})
    names = meta.get("class_names") if meta.get("task") == "classes" else None
    if len(outputs) != 1 or not names:
        raise NNError(
            Diagnostic(
                "E504",
                f"-o {path}: class names and probabilities are written for a classifier "
                "(one output, class labels); write .npy or .npz",
            )
        )
    ((out_name, logits),) = outputs.items()
    if logits.ndim != 2 or logits.shape[1] != len(names):
        raise NNError(
            Diagnostic("E504", f"-o {path}: `{out_name}` is not [N, {len(names)}] class logits")
        )
    p = probabilities(logits)
    pred = p.argmax(1)
    if path.endswith(".csv"):
        lines = [",".join(["class", *(f"p_{n}" for n in names)])]
        lines += [
            ",".join([names[k], *(f"{v:.6g}" for v in row)]) for k, row in zip(pred, p, strict=True)
        ]
        atomic_write_text(path, "\n".join(lines) + "\n")
    else:
        rows = [
            {"class": names[k], "probabilities": dict(zip(names, map(float, row), strict=True))}
            for k, row in zip(pred, p, strict=True)
        ]
        atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
    label = labels.get("label") if isinstance(labels, dict) else None
    acc = (
        f", accuracy {float((pred == label).mean()):.4f} on its labels" if label is not None else ""
    )
    print(
        f"wrote {path}: {len(pred)} rows of class and probabilities over {len(names)} classes{acc}"
    )
    return True


def cmd_sample(a: argparse.Namespace) -> int:
    from nnlang.fsio import atomic_write_bytes
    from nnlang.train.trained import TrainedRun

    if a.n < 1:
        raise NNError(Diagnostic("E504", f"`-n {a.n}`: draw at least one sample"))
    if a.length < 1 or a.temperature < 0 or a.top_k < 0 or a.steps < 1:
        raise NNError(
            Diagnostic(
                "E504",
                "`--length` and `--steps` must be at least 1, `--temperature` and `--top-k` "
                "at least 0",
            )
        )
    run = TrainedRun.open(a.file, a.run, a.model)
    drawn = run.sample(
        a.n,
        a.seed,
        prompt=a.prompt,
        length=a.length,
        temperature=a.temperature,
        top_k=a.top_k,
        steps=a.steps,
    )
    what = f"{a.n} draws of `{drawn.name}` {list(drawn.array.shape[1:])} (seed {a.seed})"
    if drawn.tokens:
        what = f"{a.n} samples of {drawn.array.shape[1]} tokens from `{drawn.name}` (seed {a.seed})"
    if drawn.texts is not None and (a.output is None or a.output.endswith(".txt")):
        text = "\n\n".join(drawn.texts) + "\n"
        if a.output is None:
            print(text, end="")
            return EXIT_OK
        atomic_write_bytes(a.output, text.encode("utf-8"))
        print(f"wrote {a.output}: {what} as text")
        return EXIT_OK
    if a.output is None:
        raise NNError(Diagnostic("E504", "`nnlang sample` needs `-o FILE.npy` for what it draws"))
    write_output(a.output, {drawn.name: drawn.array})
    print(f"wrote {a.output}: {what}")
    return EXIT_OK


def cmd_export(a: argparse.Namespace) -> int:
    from nnlang.export import export

    res = export(a.file, a.run, fmt=a.format, out=a.out, force=a.force, model=a.model)
    print(res.summary())
    return EXIT_OK


# ------------------------------------------------------------------ arguments
def train_args(t: argparse.ArgumentParser) -> None:
    t.add_argument("file", metavar="FILE")
    add_budget_flags(t)
    add_data_root_flag(t)
    t.add_argument(
        "--model", help="the model to train (default: the one the file's train section names)"
    )
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a train setting or model parameter (values in .nn syntax): epochs=5, "
        "optimizer.lr=3e-3, optimizer=sgd(lr = 0.1), hidden=128; repeatable",
    )
    t.add_argument(
        "--devices",
        metavar="N",
        help="train on N devices, or `all` (data parallel; the `devices` setting, "
        "like --set devices=N, in place of a written `mesh`); a run may resume on another "
        "count",
    )
    t.add_argument("--out", help="run directory (default: runs/<file name>, numbered if it exists)")
    many = t.add_argument_group(
        "several processes (hosts), one run (jax.distributed; docs/scale.md)"
    )
    many.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="the address of process 0, the same on every process",
    )
    many.add_argument("--num-processes", type=int, metavar="N", help="how many processes")
    many.add_argument("--process-id", type=int, metavar="I", help="this process: 0 .. N-1")
    many.add_argument(
        "--distributed",
        action="store_true",
        help="start jax.distributed with what JAX detects (SLURM, Open MPI, Kubernetes, "
        "Cloud TPU; JAX_COORDINATOR_ADDRESS)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (or the latest one) from its last checkpoint",
    )
    t.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    t.add_argument(
        "--no-cache", action="store_true", help="do not use JAX's persistent compilation cache"
    )
    t.add_argument(
        "--curves",
        action="store_true",
        help="also draw curves.png in the run directory at the end (needs matplotlib; "
        "TensorBoard and `nnlang curves RUN -o FILE.png` show the same afterwards)",
    )


def eval_args(e: argparse.ArgumentParser) -> None:
    e.add_argument("file", metavar="FILE")
    e.add_argument("--run", required=True, metavar="DIR")
    e.add_argument("--model")
    e.add_argument("--json", action="store_true")


def predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", nargs="?")
    p.add_argument("--run", metavar="DIR")
    p.add_argument(
        "--artifact",
        metavar="PATH",
        help="an exported artifact (.stablehlo or .onnx, with its .json beside it); no .nn source needed",
    )
    p.add_argument(
        "--input",
        required=True,
        help="a file (or image folder) in the training data's format, read by its source; or .npy (one input), .npz (one array per input), .csv of numbers",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help=".npy (one output) or .npz: the raw outputs; .csv or .json: a classifier's class names and probabilities",
    )
    p.add_argument("--model")


def sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE")
    p.add_argument("--run", required=True, metavar="DIR")
    p.add_argument("-n", type=int, default=16, help="how many samples to draw (default 16)")
    p.add_argument(
        "-o",
        "--output",
        help=".npy file for the samples; for a language model with a vocabulary, .txt or "
        "nothing (the text on stdout)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the draws (default 0)")
    p.add_argument(
        "--prompt", help="language model: the text the samples continue (default a newline)"
    )
    p.add_argument(
        "--length", type=int, default=200, help="language model: tokens to draw (default 200)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="language model: divides the logits; 0 takes the most likely token (default 1)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="language model: draw among the k most likely tokens; 0: all (default 0)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="RBM or DBN: rounds of Gibbs sampling in the top RBM (default 1000)",
    )
    p.add_argument("--model")


def export_args(x: argparse.ArgumentParser) -> None:
    x.add_argument("file", metavar="FILE")
    x.add_argument("--run", required=True, metavar="DIR")
    x.add_argument("--format", choices=["stablehlo", "onnx"], required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--force", action="store_true", help="overwrite an existing output")
    x.add_argument("--model")
