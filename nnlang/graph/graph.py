"""The checked graph: the contract between the front end and everything after it.

One :class:`Graph` per model: a ``networkx.DiGraph`` whose nodes carry a :class:`Node`
(layer declaration, resolved arguments, source span, inferred input and output types,
parameter owner). Lowering, summary, pictures and export read only this; NetworkX types
stay behind the methods here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from nnlang.diagnostics import Diagnostic, Span
from nnlang.layers.base import Args, LayerKind
from nnlang.shapes import ITEMSIZE, TensorType, concrete_numel

if TYPE_CHECKING:
    from nnlang.graph.program import Program


@dataclass
class Node:
    id: str
    kind: LayerKind | None  # None: a model input
    args: Args
    inputs: list[tuple[str, int]]  # (producer node id, output port), in call order
    in_types: list[TensorType]
    out_types: list[TensorType]
    span: Span
    owner: str  # the parameter owner: == id unless the node is a call of a `shared` instance
    params: int = 0
    flops: int = 0

    @property
    def kind_name(self) -> str:
        return self.kind.name if self.kind else "input"

    @property
    def state(self) -> int:
        """Scalars of non-trainable state (batch-norm running averages), as `params`."""
        return self.kind.state(self.args, self.in_types) if self.kind else 0


@dataclass(frozen=True)
class Port:
    """A model input or output: its name, the node (and port) holding it, its type."""

    name: str
    node: str
    port: int
    type: TensorType
    span: Span


@dataclass
class Graph:
    name: str
    span: Span
    args: dict[str, Any]
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    dag: nx.DiGraph = field(default_factory=nx.DiGraph)
    symbols: list[str] = field(default_factory=list)
    #: node id -> the names the user gave its value (`a = ...`, `output y = ...`), in order;
    #: inside a block prefixed by the instance (`enc/e`). Node ids stay the layer names.
    value_names: dict[str, list[str]] = field(default_factory=dict)
    #: the warnings building it reported (it built, so there were no errors)
    warnings: list[Diagnostic] = field(default_factory=list, repr=False, compare=False)
    #: the program it was built from (its sources, for messages about it)
    program: Program | None = field(default=None, repr=False, compare=False)
    _order: list[Node] | None = field(default=None, repr=False, compare=False)

    # construction -------------------------------------------------------------
    def add(self, node: Node) -> None:
        self._order = None
        self.dag.add_node(node.id, node=node)
        for src, _ in node.inputs:
            self.dag.add_edge(src, node.id)

    # reading ------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        n: Node = self.dag.nodes[node_id]["node"]
        return n

    def order(self) -> list[Node]:
        """Nodes in a deterministic topological order (source order among equals)."""
        if self._order is None:
            index = {nid: i for i, nid in enumerate(self.dag.nodes)}
            self._order = [
                self.node(nid)
                for nid in nx.lexicographical_topological_sort(self.dag, key=index.__getitem__)
            ]
        return list(self._order)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.order())

    def __len__(self) -> int:
        n: int = self.dag.number_of_nodes()
        return n

    def owners(self) -> dict[str, Node]:
        """One node per parameter owner (the first call site of a shared instance)."""
        out: dict[str, Node] = {}
        for n in self.order():
            if n.kind is not None:
                out.setdefault(n.owner, n)
        return out

    def total_params(self) -> int:
        return sum(n.params for n in self.owners().values())

    def total_state(self) -> int:
        """Non-trainable state of every parameter owner (Keras's non-trainable weights)."""
        return sum(n.state for n in self.owners().values())

    def total_flops(self) -> int:
        return sum(n.flops for n in self.order())

    def param_bytes(self, dtype: str = "f32") -> int:
        return self.total_params() * ITEMSIZE[dtype]

    def activation_bytes(self) -> int:
        """Bytes of every node's outputs for one sample (symbolic axes counted as 1)."""
        total = 0
        for n in self.order():
            for t in n.out_types:
                total += concrete_numel(t.shape) * ITEMSIZE[t.dtype]
        return total

    def descendants_of_inputs(self) -> set[str]:
        return (
            set().union(*(nx.descendants(self.dag, p.node) for p in self.inputs))
            if self.inputs
            else set()
        )

    def ancestors_of_outputs(self) -> set[str]:
        live: set[str] = set()
        for p in self.outputs:
            live.add(p.node)
            live |= nx.ancestors(self.dag, p.node)
        return live
