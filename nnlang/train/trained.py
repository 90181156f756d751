"""A trained run, opened from its run directory: what eval, predict and export work on.

    run = TrainedRun.open("model.nn", "runs/model")
    run.evaluate()                       # {"val": {...}, "test": {...}}
    run.predict({"x": x})                # raw inputs: reshaped, normalised, then the model

It holds the checked graph and train spec (from the .nn file and the run's --set
overrides), the restored state of the run's best checkpoint (else its latest) and the
run's input normalizers; :meth:`TrainedRun.model` gives the live ``nnx.Module`` with the
trained parameters, for tracing. The run directory is only read: first walked by
``rundir.confine_run`` (E511 for a link out of it, a hard link or a FIFO), then read
without a lock, since only committed checkpoints are visible to Orbax.

May import the stages before ``train`` and the ``train`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError, Sources
from nnlang.fitting import Misfit, fit_array
from nnlang.graph.graph import Graph
from nnlang.graph.program import Program
from nnlang.lower.network import Network, lower
from nnlang.train.checkpoint import Checkpoints
from nnlang.train.data import Normalizer
from nnlang.train.loop import Data, Engine, make_engine
from nnlang.train.loop import load as load_data
from nnlang.train.run import Setup, setup
from nnlang.train.rundir import load_normalizers, read_settings
from nnlang.train.spec import TrainSpec
from nnlang.train.versions import warn_if_other

Arrays = dict[str, np.ndarray]


@dataclass
class TrainedRun:
    run_dir: Path
    setup: Setup
    engine: Engine
    state: Any  # the restored (model, optimizer) state pytree
    step: int  # the checkpoint it was restored from

    @classmethod
    def open(cls, file: str | Path, run: str | Path, model: str | None = None) -> TrainedRun:
        """The run ``run`` of ``file``'s model (default: the one the run trained), with the
        run's --set overrides; E503 if ``run`` is no run directory or has no checkpoint,
        E511 if something in it leads out of it, E502 if the checkpoint does not fit the
        model the file now defines."""
        run = Path(run)
        settings = read_settings(run)
        warn_if_other(run, settings)
        s = setup(file, model or settings.get("model"), settings.get("overrides", []))
        net = lower(s.graph, s.spec.seed)
        ck = Checkpoints(run / "checkpoints", create=False)
        step = ck.best() or ck.latest()
        if step is None:
            raise NNError(Diagnostic("E503", f"`{run}` has no checkpoint yet"))
        phase = int(ck.progress(step).get("phase", 0))
        if s.spec.phases and phase < len(s.spec.phases) - 1:  # its state is an earlier phase's
            ck.close()
            names = [ph.name for ph in s.spec.phases]
            raise NNError(
                Diagnostic(
                    "E503",
                    f"`{run}` stopped in phase `{names[phase]}`: it has no model of its last "
                    f"phase `{names[-1]}` yet",
                    help=f"finish the run: nnlang train {file} --out {run} --resume",
                )
            )
        shapes = {p.name: tuple(p.type.shape) for p in s.graph.inputs}
        # eval, predict and export run on one device, whatever the run trained on
        engine = make_engine(
            s.graph, replace(s.spec, devices=1, mesh=None), net, s.spec.batch, shapes
        )
        state, _ = ck.restore(step, engine.state, what=f"model `{s.graph.name}`")
        ck.close()
        return cls(run, s, engine, state, step)

    # ------------------------------------------------------------------ what it is
    @property
    def graph(self) -> Graph:
        return self.setup.graph

    @property
    def spec(self) -> TrainSpec:
        return self.setup.spec

    @property
    def program(self) -> Program:
        return self.setup.program

    @property
    def sources(self) -> Sources:
        return self.setup.program.sources

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.graph.outputs]

    @cached_property
    def normalizers(self) -> dict[str, Normalizer]:
        """The run's normalisation statistics of the model's inputs (read on first use;
        E503 if normalizer.npz is unreadable)."""
        names = set(self.input_names)
        return {k: v for k, v in load_normalizers(self.run_dir).items() if k in names}

    def model(self) -> Network:
        """The live model in eval mode, with the restored parameters."""
        from flax import nnx

        live, _ = nnx.merge(self.engine.eval_def, self.state)
        return live  # type: ignore[no-any-return]

    def data(self) -> Data:
        """The run's data, split and normalised as in training."""
        return load_data(self.graph, self.spec, self.program.root, grain=False)

    # ------------------------------------------------------------------ what it does
    def evaluate(self, splits: tuple[str, ...] = ("val", "test")) -> dict[str, dict[str, float]]:
        """Loss and metrics on each of ``splits`` the data has (``nnlang eval``)."""
        from nnlang.train.dataload import unscale_metrics

        data = self.data()
        unscale_metrics(self.engine.metrics, data.normalizers)  # as in training
        return {
            split: self.engine.evaluate(self.state, data.splits[split])
            for split in splits
            if split in data.splits
        }

    def prepare(self, inputs: dict[str, Any]) -> Arrays:
        """Raw inputs as the model takes them: each fitted to its declared type by the one
        rule of :mod:`nnlang.fitting` and normalised; E504 otherwise."""
        norms = self.normalizers
        fixed = {}
        sizes: dict[str, int] = {}
        for p in self.graph.inputs:
            if p.name not in inputs:
                raise NNError(Diagnostic("E504", f"no data for model input `{p.name}` ({p.type})"))
            try:
                x = fit_array(
                    inputs[p.name],
                    p.type.shape,
                    p.type.dtype,
                    what=f"input `{p.name}`",
                    type_text=str(p.type),
                    sizes=sizes,
                    batch="<batch>",
                )
            except Misfit as e:
                raise NNError(Diagnostic("E504", e.message, help=e.help)) from None
            if p.name in norms:
                x = norms[p.name].apply(x)
            fixed[p.name] = x
        return fixed

    def infer(self, inputs: Arrays) -> Arrays:
        """The model's outputs on inputs already prepared (normalised)."""
        return self.engine.predict(self.state, inputs)

    def read_like_training(self, file: Path) -> tuple[dict[str, Any], Arrays] | None:
        """``file`` read by the training source's reader, as model inputs and the labels
        it holds (none for an unlabelled file); None when it is in another format. A
        mistake is E504 naming the file."""
        from nnlang.diagnostics import ArgError
        from nnlang.train.data import bind_inputs
        from nnlang.train.data.predict import read_like, reads_like

        entry, bound = self.spec.data.entry, self.spec.data.args
        if not reads_like(entry, bound, file):
            return None
        meta = read_settings(self.run_dir).get("data", {}).get("meta", {})
        model_inputs = {p.name: (p.type.dtype, p.type.shape) for p in self.graph.inputs}
        try:
            ds = read_like(entry, bound, meta, file)
            mapping = bind_inputs(ds, model_inputs)
        except ArgError as e:
            raise NNError(Diagnostic("E504", f"input `{file}`: {e.message}", help=e.help)) from None
        arrays = ds.splits["train"]
        return {i: arrays[k] for i, k in mapping.items()}, {
            k: arrays[k] for k in ds.label_keys if k in arrays
        }

    def predict(self, inputs: dict[str, Any]) -> Arrays:
        """The model's outputs on raw inputs (``nnlang predict --run``); an output trained
        against a normalised target (`normalize(..., targets = [...])`) in the target's
        own units."""
        from nnlang.train.dataload import target_outputs

        out = self.infer(self.prepare(inputs))
        for name, n in target_outputs(self.spec, load_normalizers(self.run_dir)).items():
            if name in out:
                out[name] = np.asarray(n.invert(out[name]), out[name].dtype)
        return out

    def sample(
        self,
        n: int,
        seed: int = 0,
        *,
        prompt: str | None = None,
        length: int = 200,
        temperature: float = 1.0,
        top_k: int = 0,
        steps: int = 1000,
    ) -> Drawn:
        """``n`` draws for ``nnlang sample``, reproducible from ``seed`` alone:

        - with `noise` inputs (a GAN): the `sample` output fed standard normal noise,
          the model's other inputs zeros (they do not reach a generator's output);
        - a causal language model (one integer ``[T]`` input, ``[T, vocab]`` logits: the
          `sample` output, else the loss's prediction): ``n`` continuations of
          ``prompt`` (:func:`nnlang.train.sampling.generate`; ``length``,
          ``temperature``, ``top_k``), decoded with the run's vocabulary;
        - a `sample` output behind ``sample_normal`` values (a VAE): those drawn from their
          prior N(0, I) (:func:`nnlang.train.sampling.from_prior`);
        - an RBM or a stack of them (a DBN): visible units by ``steps`` rounds of Gibbs
          sampling (:func:`nnlang.train.sampling.gibbs`).

        E512 when the train section declares nothing of these."""
        from nnlang.train import sampling
        from nnlang.train.multistep import sample_noise

        spec, graph = self.spec, self.graph
        if spec.sample is not None and spec.noise:
            inputs = sample_noise(graph, spec.noise, n, seed)
            for name, zero in sampling.zeros_for(graph, self.engine.model.input_dtypes, n).items():
                inputs.setdefault(name, zero)
            return Drawn(spec.sample, self.engine.predict(self.state, inputs)[spec.sample])
        target = spec.sample or self._loss_prediction()
        if target is not None and sampling.is_language_model(graph, target):
            return self._generate(target, n, seed, prompt, length, temperature, top_k)
        if spec.sample is not None and sampling.prior_nodes(graph, spec.sample):
            drawn = sampling.from_prior(
                self.engine.eval_def,
                self.state,
                graph,
                self.engine.model.input_dtypes,
                spec.sample,
                n,
                seed,
            )
            return Drawn(spec.sample, drawn)
        if sampling.rbm_stack(graph):
            drawn = sampling.gibbs(self.engine.eval_def, self.state, graph, n, steps, seed)
            return Drawn(graph.inputs[0].name if len(graph.inputs) == 1 else "visible", drawn)
        missing = "sample = <output>" if spec.sample is None else "noise = <input>"
        raise NNError(
            Diagnostic(
                "E512",
                f"`train {graph.name}` declares nothing to sample: it has no `{missing}`",
                spec.span,
                help="a generative model names the noise inputs it is fed (`noise = z`) "
                "and the output drawn from them (`sample = fake`), or the output behind a "
                "`sample_normal` (`sample = recon`); a causal language model takes integer "
                "ids [T] and gives logits [T, vocab]; see docs/train.md",
            )
        )

    def _loss_prediction(self) -> str | None:
        outs = set(self.output_names)
        for t in self.spec.loss_terms():
            if t.call.tensors and t.call.tensors[0] in outs:
                return str(t.call.tensors[0])
        return None

    def _generate(
        self,
        output: str,
        n: int,
        seed: int,
        prompt: str | None,
        length: int,
        temperature: float,
        top_k: int,
    ) -> Drawn:
        from nnlang.train import sampling

        meta = read_settings(self.run_dir).get("data", {}).get("meta", {})
        vocab = meta.get("vocab")
        word = meta.get("level") == "word"
        if vocab is None:  # ids in, ids out: the prompt is a list of ids
            ids = [int(t) for t in (prompt or "1").replace(",", " ").split()]
        else:
            lookup = {t: i for i, t in enumerate(vocab)}
            text = prompt if prompt is not None else ("\n" if "\n" in lookup else vocab[-1])
            if meta.get("lowercase"):
                text = text.lower()
            tokens = text.split() if word else list(text)
            ids = [lookup.get(t, 0) for t in tokens]
        if not ids:
            raise NNError(Diagnostic("E504", "`--prompt` is empty: give at least one token"))
        drawn = sampling.generate(
            self.engine.eval_def,
            self.state,
            self.graph,
            output,
            ids,
            n=n,
            length=length,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
        )
        texts = None
        if vocab is not None:
            sep = " " if word else ""
            texts = [sep.join(vocab[i] for i in row) for row in drawn.tolist()]
        return Drawn(output, drawn, texts, tokens=True)


@dataclass
class Drawn:
    """What :meth:`TrainedRun.sample` drew: the output's name, the array of draws, and
    for a language model (``tokens``: the array holds token ids) with a vocabulary each
    draw decoded to text."""

    name: str
    array: np.ndarray
    texts: list[str] | None = None
    tokens: bool = False
