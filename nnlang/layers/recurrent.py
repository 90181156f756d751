"""Recurrent layers over ``[T, F]`` sequences: ``nnx.RNN`` (a scan over time) around
``nnx.LSTMCell``, ``nnx.GRUCell`` or ``nnx.SimpleCell``. ``T`` may be symbolic."""

from __future__ import annotations

from typing import Any

from nnlang.layers.base import Args, Attr, expect_float, expect_rank, layer
from nnlang.layers.core import concrete_last
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "recurrent"

_ATTRS = (
    Attr("units", "int", doc="size of the hidden state and of each output step", min=1),
    Attr(
        "return_sequences",
        "bool",
        True,
        doc="output every step `[T, units]`; false: only the last step `[units]`",
    ),
    Attr("return_state", "bool", False, doc="also output the final state (see outputs)"),
)


def _recurrent_kind(
    name: str,
    cell: str,
    what: str,
    *,
    gates: int,
    bias: int,
    states: tuple[str, ...],
) -> None:
    """Declare a recurrent kind: ``gates`` input and recurrent projections of ``units``
    each, ``bias`` bias vectors of ``units``; ``states`` names the final-state outputs."""

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        x = ins[0]
        expect_float(name, x)
        expect_rank(name, x, (2,), "[T, F]")
        concrete_last(name, x)
        out = x.with_shape((x.shape[0], a.units) if a.return_sequences else (a.units,))
        state = x.with_shape((a.units,))
        return [out] + ([state] * len(states) if a.return_state else [])

    def params(a: Args, ins: list[TensorType]) -> int:
        f, u = int(ins[0].shape[-1]), a.units
        return gates * (f * u + u * u) + bias * u

    def flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
        f, u = int(ins[0].shape[-1]), a.units
        # per step: the gate matmuls (x and h), plus a few elementwise ops per gate
        return concrete_numel(ins[0].shape[:1]) * (2 * gates * (f + u) * u + 4 * gates * u)

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        from flax import nnx

        from nnlang.layers.modules import Recurrent, dtype_of

        x = ins[0]
        c = getattr(nnx, cell)(int(x.shape[-1]), a.units, dtype=dtype_of(x), rngs=rngs)
        return Recurrent(
            c, a.units, return_sequences=a.return_sequences, return_state=a.return_state
        )

    outputs = ", ".join(("out", *states))
    layer(
        name,
        family=FAMILY,
        doc=f"{what} over `[T, F]` (`nnx.RNN` scanning `nnx.{cell}`, zero initial state). "
        f"With `return_state = true` the outputs are `({outputs})`, each state `[units]`.",
        attrs=_ATTRS,
        params=params,
        flops=flops,
        build=build,
        n_outputs=lambda a: 1 + len(states) if a.return_state else 1,
        output_names=("out", *states),
        example=f"""model Example {{
    input x: f32[T, 8]
    seq, {", ".join(states)} = x -> {name}(32, return_state = true)
    output y = seq -> dense(1)
    output state = {"(h, c) -> concat" if len(states) > 1 else "h"}
}}""",
    )(shape)


_recurrent_kind("lstm", "LSTMCell", "Long short-term memory", gates=4, bias=4, states=("h", "c"))
_recurrent_kind("gru", "GRUCell", "Gated recurrent unit", gates=3, bias=3, states=("h",))
_recurrent_kind(
    "rnn", "SimpleCell", "Simple (Elman) tanh recurrence", gates=1, bias=1, states=("h",)
)


# ------------------------------------------------------------- bidirectional
#: cell name -> (nnx cell, gates, bias vectors)
_CELLS = {"lstm": ("LSTMCell", 4, 4), "gru": ("GRUCell", 3, 3), "rnn": ("SimpleCell", 1, 1)}
_MERGES = ("concat", "sum", "mul", "ave")


def _bi_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from flax import nnx

    from nnlang.layers.family_modules import Bidirectional
    from nnlang.layers.modules import dtype_of

    x = ins[0]
    cell = getattr(nnx, _CELLS[a.cell][0])
    f, b = (cell(int(x.shape[-1]), a.units, dtype=dtype_of(x), rngs=rngs) for _ in range(2))
    return Bidirectional(f, b, a.units, merge=a.merge, return_sequences=a.return_sequences)


def _bi_params(a: Args, ins: list[TensorType]) -> int:
    _, gates, bias = _CELLS[a.cell]
    f, u = int(ins[0].shape[-1]), a.units
    return 2 * (gates * (f * u + u * u) + bias * u)


def _bi_flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    _, gates, _ = _CELLS[a.cell]
    f, u = int(ins[0].shape[-1]), a.units
    return 2 * concrete_numel(ins[0].shape[:1]) * (2 * gates * (f + u) * u + 4 * gates * u)


@layer(
    "bidirectional",
    family=FAMILY,
    doc="A recurrence run forwards and backwards in time over `[T, F]` (two `nnx.RNN` "
    "scans with their own weights; the backward one reversed and re-ordered), their "
    "outputs merged step by step: `concat` (`[T, 2·units]`), `sum`, `mul` or `ave` "
    "(`[T, units]`). With `return_sequences = false` the forward pass's last step is "
    "merged with the backward pass's last step (time 0).",
    attrs=(
        _ATTRS[0],
        Attr(
            "cell", "str", "lstm", doc="the recurrent cell of each direction", choices=tuple(_CELLS)
        ),
        Attr("merge", "str", "concat", doc="how the two directions combine", choices=_MERGES),
        _ATTRS[1],
    ),
    params=_bi_params,
    flops=_bi_flops,
    build=_bi_build,
    example="""model Example {
    input x: f32[T, 8]
    output y = x -> bidirectional(32, cell = "gru", return_sequences = false) -> dense(2)
}""",
)
def _bidirectional(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("bidirectional", x)
    expect_rank("bidirectional", x, (2,), "[T, F]")
    concrete_last("bidirectional", x)
    u = 2 * a.units if a.merge == "concat" else a.units
    return [x.with_shape((x.shape[0], u) if a.return_sequences else (u,))]
