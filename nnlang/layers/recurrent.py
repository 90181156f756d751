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
