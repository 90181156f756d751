"""The layer-kind declaration: one place per kind.

A kind is declared once, with :func:`layer`, in the module of its family. The grammar
names no layers; the graph builder, shape inference, ``summary``, ``nnlang layers``,
``docs/layers.md`` and the conformance tests all read :data:`REGISTRY`.

A declaration holds:

- ``attrs``: typed attributes with defaults, ranges and docs. The graph builder binds
  call arguments to them (positionally in declaration order, or by keyword), checks
  types and ranges, and hands the shape rule a complete :class:`Args`.
- ``shape(args, ins) -> outs``: the JAX-free shape rule over per-sample
  :class:`~nnlang.shapes.TensorType` (no batch axis). It raises
  :class:`~nnlang.diagnostics.ArgError` naming the attribute at fault.
- ``params(args, ins) -> int`` and ``flops(args, ins, outs) -> int``: pure arithmetic,
  so absurd sizes are refused without allocating; ``state(args, ins) -> int`` the
  scalars of non-trainable state (batch-norm running averages).
- ``build(args, ins, rngs) -> callable``: the Flax NNX lowering. It gets the concrete
  feature sizes found by shape inference and returns an ``nnx.Module`` (for kinds with
  parameters or state) or a plain function; either is called with the batched inputs
  positionally and returns one array, or a tuple for multi-output kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.shapes import TensorType
from nnlang.signature import REQUIRED, Param  # noqa: F401 - REQUIRED re-exported for layers

#: A layer's attributes are declared like every other parameter list (one binder).
Attr = Param


class Args(Mapping[str, Any]):
    """The resolved attributes of one layer call (every attribute present)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Args({self._values!r})"

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Args) and self._values == other._values


ShapeRule = Callable[[Args, list[TensorType]], list[TensorType]]
CountRule = Callable[[Args, list[TensorType]], int]
FlopRule = Callable[[Args, list[TensorType], list[TensorType]], int]
BuildRule = Callable[[Args, list[TensorType], Any], Callable[..., Any]]


def _zero(*_: Any) -> int:
    return 0


@dataclass(frozen=True)
class LayerKind:
    name: str
    family: str
    doc: str
    attrs: tuple[Attr, ...]
    shape: ShapeRule
    build: BuildRule
    params: CountRule = _zero
    flops: FlopRule = _zero
    #: scalars of non-trainable state the lowered module keeps (``nnx.BatchStat`` running
    #: averages, a persistent chain), counted as Keras counts non-trainable weights.
    state: CountRule = _zero
    #: (min, max) number of tensor inputs; max None = any number.
    n_inputs: tuple[int, int | None] = (1, 1)
    #: number of outputs, or a function of the arguments (``return_state``).
    n_outputs: int | Callable[[Args], int] = 1
    #: output names for multi-output kinds, used in docs and messages.
    output_names: tuple[str, ...] = ()
    #: a small .nn model using the kind; docs show it and the tests check it.
    example: str = ""
    #: False for kinds that jax2onnx cannot convert (export suggests StableHLO), or a
    #: function of the arguments and input types saying whether this use converts.
    onnx: bool | Callable[[Args, list[TensorType]], bool] = True
    #: True where the lowered module behaves differently in training (dropout, norms).
    has_train_mode: bool = False
    #: True where the weights depend on the attributes only, so a shared instance may be
    #: called with inputs of other types (an embedding's ids and its tied projection).
    weights_fit_any_input: bool = False
    #: the local learning rule the kind trains by (`loss = rule(output)`), e.g.
    #: "kohonen"; its lowered module has a ``rule(x, y, ctx)`` method (layers/rules.py).
    rule: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def attr(self, name: str) -> Attr | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None

    def converts(self, args: Args, ins: list[TensorType]) -> bool:
        """Whether this use of the kind converts to ONNX."""
        return self.onnx(args, ins) if callable(self.onnx) else self.onnx

    def outputs_for(self, args: Args) -> int:
        n = self.n_outputs
        return n(args) if callable(n) else n


REGISTRY: dict[str, LayerKind] = {}


def layer(
    name: str,
    *,
    family: str,
    doc: str,
    attrs: tuple[Attr, ...] = (),
    params: CountRule = _zero,
    flops: FlopRule = _zero,
    state: CountRule = _zero,
    build: BuildRule,
    n_inputs: tuple[int, int | None] = (1, 1),
    n_outputs: int | Callable[[Args], int] = 1,
    output_names: tuple[str, ...] = (),
    example: str = "",
    onnx: bool | Callable[[Args, list[TensorType]], bool] = True,
    has_train_mode: bool = False,
    weights_fit_any_input: bool = False,
    rule: str = "",
) -> Callable[[ShapeRule], ShapeRule]:
    """Declare a layer kind; decorates its shape rule. Declaring is registering."""

    def register(shape: ShapeRule) -> ShapeRule:
        if name in REGISTRY:  # pragma: no cover - a bug in nnlang
            raise ValueError(f"layer kind {name!r} declared twice")
        REGISTRY[name] = LayerKind(
            name=name,
            family=family,
            doc=doc,
            attrs=attrs,
            shape=shape,
            build=build,
            params=params,
            flops=flops,
            state=state,
            n_inputs=n_inputs,
            n_outputs=n_outputs,
            output_names=output_names,
            example=example,
            onnx=onnx,
            has_train_mode=has_train_mode,
            weights_fit_any_input=weights_fit_any_input,
            rule=rule,
        )
        return shape

    return register


def fail(
    message: str, *, arg: str | None = None, help: str | None = None, code: str = "E302"
) -> ArgError:
    """Shape-rule helper: ``raise fail("...", arg="kernel")``."""
    return ArgError(code, message, arg=arg, help=help)


def expect_rank(
    kind: str, x: TensorType, ranks: tuple[int, ...], layout: str, *, what: str = "input"
) -> None:
    """Raise E301 unless ``x`` has one of ``ranks`` (``layout`` names the axes)."""
    if x.rank not in ranks:
        raise ArgError(
            "E301",
            f"`{kind}` expects a rank-{'/'.join(map(str, ranks))} {what} {layout} but got {x}",
        )


def expect_float(kind: str, x: TensorType) -> None:
    if not x.is_float:
        raise ArgError(
            "E304",
            f"`{kind}` expects a floating-point input but got {x}",
            help="cast integer data with `cast(f32)`, or use `embedding` for token ids",
        )


def expect_min_rank(kind: str, x: TensorType, rank: int, layout: str) -> None:
    """Raise E301 unless ``x`` has at least ``rank`` axes (``layout`` names them)."""
    if x.rank < rank:
        raise ArgError(
            "E301", f"`{kind}` expects an input of rank {rank} or more {layout} but got {x}"
        )


def norm_axis(kind: str, axis: int, rank: int, *, arg: str = "axis") -> int:
    """Resolve a per-sample axis (negative counts from the end) to ``0..rank-1``."""
    if not -rank <= axis < rank:
        raise ArgError(
            "E202",
            f"`{kind}` got {arg} = {axis}, but its input has {rank} per-sample "
            f"ax{'is' if rank == 1 else 'es'} (valid: {-rank} to {rank - 1})",
            arg=arg,
            help="axes count over the per-sample shape; the batch axis is not counted",
        )
    return axis % rank
