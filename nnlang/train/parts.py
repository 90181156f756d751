"""Trainable parts: which parameters a name or pattern selects.

A parameter's path is ``node.name`` (``backbone/dense.kernel``): the node id the summary
shows (a layer inside a block instance is ``instance/layer``; node ids have no dots) and
the parameter's name in it. A pattern selects a parameter when it equals its node id, names a block instance
the node is inside (``backbone`` selects ``backbone/dense`` and ``backbone/relu_1``), or
matches the node id or the whole path as a shell glob (``enc/dense*``, ``*/batch_norm``;
``*`` crosses ``/``). :func:`select` is the one matcher: the `freeze` and `lr_groups`
settings use it, and so may a step's `update` list.

Imports: the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class Selection:
    """What :func:`select` found: per pattern, the paths it selects (in path order)."""

    paths: tuple[str, ...]  # every path given
    by_pattern: tuple[tuple[str, ...], ...]  # parallel to the patterns

    @property
    def selected(self) -> frozenset[str]:
        return frozenset(p for group in self.by_pattern for p in group)

    def unmatched(self) -> list[int]:
        """Indices of the patterns that select nothing."""
        return [i for i, group in enumerate(self.by_pattern) if not group]


def node_of(path: str) -> str:
    """The node id of a parameter path (``backbone/dense.kernel`` -> ``backbone/dense``)."""
    return path.split(".", 1)[0]


def matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` selects the parameter at ``path`` (see the module doc)."""
    node = node_of(path)
    if not _GLOB & set(pattern):
        return pattern in (node, path) or node.startswith(pattern + "/")
    return fnmatchcase(node, pattern) or fnmatchcase(path, pattern)


def select(paths: Iterable[str], patterns: Sequence[str]) -> Selection:
    """The parameters each pattern selects among ``paths``."""
    ps = tuple(paths)
    return Selection(ps, tuple(tuple(p for p in ps if matches(pat, p)) for pat in patterns))


def names_near(pattern: str, paths: Iterable[str]) -> list[str]:
    """Candidate names for a did-you-mean: node ids and the block instances around them."""
    out: set[str] = set()
    for p in paths:
        node = node_of(p)
        out.add(node)
        parts = node.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(out)
