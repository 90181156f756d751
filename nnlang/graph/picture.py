"""Pictures of a checked graph: Graphviz DOT source, and an SVG drawn without Graphviz.

Both draw the same boxes: one per node with its lines (:func:`node_lines`: id and the
user's value names, kind and output shape, a shared instance's owner, the model output
it holds), the nodes of each block instance inside a cluster (nested as the instances
are), and the call sites of a `shared` instance dashed. DOT strings are quoted once, by
:func:`quote` (a line break is Graphviz's ``\\n`` escape inside the one quoted string).

The fallback (:func:`to_svg`) lays the graph out in layers (each node one layer below
its deepest input, ``networkx.topological_generations``), orders each layer by the mean
position of its inputs (a few barycentre sweeps) and writes the SVG by hand with the
element structure Graphviz uses (``<g class="node"><title>id</title>... <text>line``),
so :func:`svg_labels` reads the labels back from either picture.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

import networkx as nx

if TYPE_CHECKING:
    from nnlang.graph.graph import Graph, Node

INPUT_FILL, OUTPUT_FILL, LAYER_FILL = "lightblue", "palegreen", "white"
SVG_FILL = {"lightblue": "#add8e6", "palegreen": "#98fb98", "white": "#ffffff"}


def quote(s: str) -> str:
    """A DOT quoted string holding ``s`` exactly (line breaks as Graphviz's ``\\n``)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def node_lines(g: Graph, n: Node) -> list[str]:
    """The label of a node, one entry per line."""
    shapes = ", ".join(str(t) for t in n.out_types)
    names = [v for v in g.value_names.get(n.id, []) if v != n.id]
    head = n.id + (f" ({', '.join(names)})" if names else "")
    if n.kind is None:
        return [head, f"input {shapes}"]
    lines = [head, f"{n.kind.name} → {shapes}"]
    if n.owner != n.id:
        lines.append(f"shares {n.owner}")
    lines += [f"output {p.name}" for p in g.outputs if p.node == n.id]
    return lines


def fill(g: Graph, n: Node) -> str:
    if any(p.node == n.id for p in g.outputs):
        return OUTPUT_FILL
    return INPUT_FILL if n.kind is None else LAYER_FILL


def instance_of(node_id: str) -> str:
    """The block instance a node belongs to (`stage/block` of `stage/block/conv`), or ''."""
    return node_id.rsplit("/", 1)[0] if "/" in node_id else ""


def clusters(g: Graph) -> dict[str, str]:
    """Every block instance (also the enclosing ones) -> its cluster label."""
    out: dict[str, str] = {}
    owners: dict[str, str] = {}  # instance -> the instance whose weights it uses
    for n in g.order():
        inst = instance_of(n.id)
        while inst:
            out.setdefault(inst, inst)
            inst = instance_of(inst)
        if n.owner != n.id and instance_of(n.id):
            owners[instance_of(n.id)] = instance_of(n.owner)
    for inst, owner in owners.items():
        if owner and owner != inst:
            out[inst] = f"{inst} (shares {owner})"
            if owner in out and "(shared" not in out[owner]:
                out[owner] = f"{owner} (shared)"
    return out


def to_dot(g: Graph) -> str:
    """Graphviz source: boxes, clusters for block instances, dashed shared call sites."""
    labels = clusters(g)
    members: dict[str, list[Node]] = {}
    for n in g.order():
        members.setdefault(instance_of(n.id), []).append(n)
    lines = [
        f"digraph {quote(g.name)} {{",
        "  rankdir=TB;",
        '  graph [fontname="Helvetica"];',
        '  node [shape=box, fontname="Helvetica"];',
    ]

    def emit(inst: str, depth: int) -> None:
        pad = "  " * depth
        for n in members.get(inst, []):
            style = ["filled"] + (["dashed"] if n.owner != n.id else [])
            lines.append(
                f"{pad}{quote(n.id)} [label={quote(chr(10).join(node_lines(g, n)))}, "
                f"style={quote(','.join(style))}, fillcolor={quote(fill(g, n))}];"
            )
        for child in sorted(c for c in labels if instance_of(c) == inst):
            lines.append(f"{pad}subgraph {quote('cluster_' + child)} {{")
            lines.append(f"{pad}  label={quote(labels[child])};")
            dashed = "(shares " in labels[child]
            lines.append(f"{pad}  style={quote('rounded,dashed' if dashed else 'rounded')};")
            emit(child, depth + 1)
            lines.append(f"{pad}}}")

    emit("", 1)
    for a, b in g.dag.edges:
        lines.append(f"  {quote(a)} -> {quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the fallback SVG
CHAR_W, LINE_H, PAD, GAP_X, GAP_Y, CLUSTER_PAD = 7.0, 15.0, 8.0, 24.0, 64.0, 10.0


def layout(g: Graph) -> dict[str, tuple[float, float, float, float]]:
    """Node id -> (centre x, top y, width, height) of its box."""
    order = {n.id: i for i, n in enumerate(g.order())}
    layers = [sorted(gen, key=order.__getitem__) for gen in nx.topological_generations(g.dag)]
    size = {
        n.id: (
            max(len(line) for line in node_lines(g, n)) * CHAR_W + 2 * PAD,
            len(node_lines(g, n)) * LINE_H + 2 * PAD,
        )
        for n in g.order()
    }
    pos: dict[str, float] = {}

    def place(layer: list[str]) -> None:
        x, prev = 0.0, None
        for nid in layer:
            w = size[nid][0]
            if prev is not None:  # room for the cluster frames between two instances
                x += GAP_X + (4 * CLUSTER_PAD if instance_of(prev) != instance_of(nid) else 0)
            pos[nid] = x + w / 2
            x += w
            prev = nid

    for layer in layers:
        place(layer)
    for sweep in range(4):  # barycentre ordering: down, up, down, up
        seq = layers if sweep % 2 == 0 else layers[::-1]
        for layer in seq[1:]:
            near = g.dag.predecessors if sweep % 2 == 0 else g.dag.successors

            def centre(nid: str, near=near) -> tuple[float, str, int]:
                xs = [pos[m] for m in near(nid)]
                return (sum(xs) / len(xs) if xs else pos[nid], instance_of(nid), order[nid])

            layer.sort(key=centre)
            place(layer)

    def span(layer: list[str]) -> float:
        return pos[layer[-1]] + size[layer[-1]][0] / 2

    width = max(span(layer) for layer in layers)
    out: dict[str, tuple[float, float, float, float]] = {}
    y = CLUSTER_PAD * 3
    for layer in layers:
        shift = (width - span(layer)) / 2 + CLUSTER_PAD * 3
        for nid in layer:
            out[nid] = (pos[nid] + shift, y, *size[nid])
        y += max(size[n][1] for n in layer) + GAP_Y
    return out


def to_svg(g: Graph) -> str:
    """The graph as a standalone SVG, laid out by :func:`layout` (no Graphviz needed)."""
    box = layout(g)
    labels = clusters(g)
    right = max(x + w / 2 for x, _, w, _ in box.values()) + CLUSTER_PAD * 3
    bottom = max(y + h for _, y, _, h in box.values()) + CLUSTER_PAD * 3
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{right:.0f}pt" height="{bottom:.0f}pt" '
        f'viewBox="0 0 {right:.0f} {bottom:.0f}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
        f'<g id="graph0" class="graph"><title>{escape(g.name)}</title>',
    ]
    for inst in sorted(labels, key=lambda c: (c.count("/"), c)):  # outer clusters first
        inside = [b for nid, b in box.items() if nid.startswith(inst + "/")]
        depth = inst.count("/")
        m = CLUSTER_PAD * (2 - min(depth, 1))
        x0 = min(x - w / 2 for x, _, w, _ in inside) - m
        x1 = max(x + w / 2 for x, _, w, _ in inside) + m
        y0 = min(y for _, y, _, _ in inside) - m - LINE_H
        y1 = max(y + h for _, y, _, h in inside) + m
        dash = ' stroke-dasharray="5,3"' if "(shares " in labels[inst] else ""
        out += [
            f'<g class="cluster"><title>{escape("cluster_" + inst)}</title>',
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
            f'rx="6" fill="none" stroke="#777777"{dash}/>',
            f'<text x="{(x0 + x1) / 2:.1f}" y="{y0 + LINE_H - 2:.1f}" text-anchor="middle" '
            f'fill="#555555">{escape(labels[inst])}</text></g>',
        ]
    for a, b in g.dag.edges:
        xa, ya, _, ha = box[a]
        xb, yb, _, _ = box[b]
        out.append(
            f'<g class="edge"><title>{escape(f"{a}->{b}")}</title>'
            f'<path d="M {xa:.1f} {ya + ha:.1f} L {xb:.1f} {yb:.1f}" stroke="#333333" '
            'fill="none" marker-end="url(#arrow)"/></g>'
        )
    for n in g.order():
        x, y, w, h = box[n.id]
        dash = ' stroke-dasharray="4,2"' if n.owner != n.id else ""
        out += [
            f'<g class="node"><title>{escape(n.id)}</title>',
            f'<rect x="{x - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill={quoteattr(SVG_FILL[fill(g, n)])} stroke="#000000"{dash}/>',
        ]
        for i, line in enumerate(node_lines(g, n)):
            ty = y + PAD + LINE_H * (i + 1) - 3
            out.append(f'<text x="{x:.1f}" y="{ty:.1f}" text-anchor="middle">{escape(line)}</text>')
        out.append("</g>")
    out += ["</g>", "</svg>"]
    return "\n".join(out) + "\n"


def svg_labels(svg: str) -> dict[str, list[str]]:
    """Reading a picture back: each node's title (its id) -> its text lines, from an SVG
    written by :func:`to_svg` or by Graphviz from :func:`to_dot`; clusters are keyed
    ``cluster_<instance>``."""
    ns = "{http://www.w3.org/2000/svg}"
    root = ET.fromstring(svg.encode())
    out: dict[str, list[str]] = {}
    for el in root.iter(f"{ns}g"):
        if el.get("class") not in ("node", "cluster"):
            continue
        title = el.find(f"{ns}title")
        texts = ["".join(t.itertext()) for t in el.iter(f"{ns}text")]
        if title is not None and title.text is not None:
            out[title.text] = texts
    return out


def to_png(g: Graph, dpi: int = 100) -> bytes:
    """The same picture as :func:`to_svg`, rasterised by matplotlib (no Graphviz)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    box = layout(g)
    right = max(x + w / 2 for x, _, w, _ in box.values()) + CLUSTER_PAD * 3
    bottom = max(y + h for _, y, _, h in box.values()) + CLUSTER_PAD * 3
    fig = plt.figure(figsize=(right / 72, bottom / 72), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, right)
    ax.set_ylim(bottom, 0)
    ax.axis("off")
    labels = clusters(g)
    for inst in labels:
        inside = [b for nid, b in box.items() if nid.startswith(inst + "/")]
        m = CLUSTER_PAD * (2 - min(inst.count("/"), 1))
        x0 = min(x - w / 2 for x, _, w, _ in inside) - m
        x1 = max(x + w / 2 for x, _, w, _ in inside) + m
        y0 = min(y for _, y, _, _ in inside) - m - LINE_H
        y1 = max(y + h for _, y, _, h in inside) + m
        ls = "--" if "(shares " in labels[inst] else "-"
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#777777", ls=ls))
        ax.text((x0 + x1) / 2, y0 + LINE_H - 2, labels[inst], ha="center", fontsize=8)
    for a, b in g.dag.edges:
        xa, ya, _, ha = box[a]
        xb, yb, _, _ = box[b]
        ax.add_patch(FancyArrowPatch((xa, ya + ha), (xb, yb), arrowstyle="-|>", mutation_scale=8))
    for n in g.order():
        x, y, w, h = box[n.id]
        ls = "--" if n.owner != n.id else "-"
        ax.add_patch(Rectangle((x - w / 2, y), w, h, fc=SVG_FILL[fill(g, n)], ec="k", ls=ls))
        text = "\n".join(node_lines(g, n))
        ax.text(x, y + h / 2, text, ha="center", va="center", fontsize=8, linespacing=1.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
