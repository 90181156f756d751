"""Render the layer reference (``docs/layers.md``) from :data:`REGISTRY`.

Regenerate with ``python -m nnlang.layers.doc > docs/layers.md``; a test keeps the
file equal to :func:`render_markdown`.
"""

from __future__ import annotations

from typing import Any

from nnlang.layers import FAMILIES, REGISTRY
from nnlang.layers.base import LayerKind

HEADER = """\
<!-- Generated from the layer registry by nnlang/layers/doc.py: do not edit.
     Regenerate with: python -m nnlang.layers.doc > docs/layers.md -->

# Layer reference

Every layer kind nnlang knows, grouped by family. Shapes are per sample: the batch
axis is implicit and never written, and every `axis`/`perm` argument counts over the
per-sample axes (negative values count from the end). Arguments may be given
positionally in the order listed, or by name. Symbolic axes (such as `T`) are allowed
wherever a fixed size is not needed.
"""


def value_text(v: Any) -> str:
    """An attribute value as it is written in a .nn file."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "(" + ", ".join(value_text(x) for x in v) + (",)" if len(v) == 1 else ")")
    return repr(v)


def default_text(v: Any) -> str:
    # None means "derived from other arguments"; the attribute's doc says how.
    return "unset" if v is None else value_text(v)


def signature(kind: LayerKind) -> str:
    parts = [a.name if a.required else f"{a.name} = {default_text(a.default)}" for a in kind.attrs]
    return f"{kind.name}({', '.join(parts)})" if parts else kind.name


def range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def _count(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{lo} or more"
    return str(lo) if lo == hi else f"{lo} to {hi}"


def render_kind(kind: LayerKind) -> str:
    out = [f"### `{kind.name}`", "", f"`{signature(kind)}`", "", kind.doc, ""]
    if kind.attrs:
        out += ["| argument | type | default | meaning |", "|---|---|---|---|"]
        for a in kind.attrs:
            default = "required" if a.required else f"`{default_text(a.default)}`"
            doc = a.doc
            if a.min is not None or a.max is not None:
                doc += f" ({range_text(a.min, a.max)})"
            if a.choices:
                doc += "; one of " + ", ".join(f"`{value_text(c)}`" for c in a.choices)
            out.append(f"| `{a.name}` | {a.type} | {default} | {doc} |")
        out.append("")
    outputs = ", ".join(f"`{n}`" for n in kind.output_names) if kind.output_names else "1"
    facts = [f"inputs: {_count(*kind.n_inputs)}", f"outputs: {outputs}"]
    if kind.has_train_mode:
        facts.append("behaves differently in training and eval mode")
    out += ["- " + "; ".join(facts), "", "```nn", kind.example.strip(), "```", ""]
    return "\n".join(out)


def render_markdown() -> str:
    families = list(FAMILIES) + sorted({k.family for k in REGISTRY.values()} - set(FAMILIES))
    out = [HEADER]
    index = []
    for fam in families:
        names = [k for k, v in REGISTRY.items() if v.family == fam]  # declaration order
        title = FAMILIES.get(fam, fam.title())
        index.append(f"- **{title}**: " + ", ".join(f"[`{n}`](#{n})" for n in names))
    out += index + [""]
    for fam in families:
        out += [f"## {FAMILIES.get(fam, fam.title())}", ""]
        for name in [k for k, v in REGISTRY.items() if v.family == fam]:
            out.append(render_kind(REGISTRY[name]))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
