"""What ``nnlang sample`` draws from a trained run, other than a GAN's noise inputs
(those are :func:`nnlang.train.multistep.sample_noise`):

- **from the prior** (a VAE's decoder): every ``sample_normal`` on the way to the
  `sample` output is replaced by draws of its prior N(0, I), the distribution the KL term
  pulls the posterior towards, and the rest of the model maps them
  (:func:`from_prior`);
- **autoregressively** (a causal language model): the model's one integer input holds
  the prompt and the tokens drawn so far, and each new token is drawn from the softmax of
  the logits at the last filled position, divided by a temperature and cut to the top k
  (:func:`generate`). A context longer than the input's length keeps its last ``T``
  tokens, as GPT-style sampling does.

Both are one jitted program of the restored state; the random numbers come from
``seed`` alone, so a draw is reproducible. May import the stages before ``train``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from flax import nnx

from nnlang.graph.graph import Graph, Node, Port
from nnlang.shapes import DTYPES

CHUNK = 1024  # draws per call of the prior sampler


def output_port(graph: Graph, name: str) -> Port:
    return next(p for p in graph.outputs if p.name == name)


def prior_nodes(graph: Graph, output: str) -> list[Node]:
    """The ``sample_normal`` nodes the output ``output`` depends on, in graph order."""
    up = nx.ancestors(graph.dag, output_port(graph, output).node)
    return [n for n in graph.order() if n.id in up and n.kind_name == "sample_normal"]


def zeros_for(graph: Graph, dtypes: tuple[Any, ...], n: int) -> dict[str, np.ndarray]:
    return {
        p.name: np.zeros((n, *(int(d) for d in p.type.shape)), dt)
        for p, dt in zip(graph.inputs, dtypes, strict=True)
    }


def from_prior(
    eval_def: Any,
    state: Any,
    graph: Graph,
    dtypes: tuple[Any, ...],
    output: str,
    n: int,
    seed: int,
) -> np.ndarray:
    """``n`` draws of ``output`` with each of its ``sample_normal`` values drawn from
    N(0, I) by ``seed``; the model's inputs are zeros (they reach the output only
    through the values replaced; ``dtypes`` are the inputs' element types)."""
    port = output_port(graph, output)
    nodes = prior_nodes(graph, output)
    key = jax.random.key(seed)
    draws = {
        (nd.id, 0): np.asarray(
            jax.random.normal(
                jax.random.fold_in(key, i),
                (n, *(int(d) for d in nd.out_types[0].shape)),
                jnp.dtype(DTYPES[nd.out_types[0].dtype]),
            )
        )
        for i, nd in enumerate(nodes)
    }

    @jax.jit
    def run(state: Any, given: dict[Any, Any], inputs: dict[str, Any]) -> Any:
        model, _ = nnx.merge(eval_def, state)
        return model.values_given(given, **inputs)[(port.node, port.port)]

    parts = []
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        given = {k: v[lo : lo + m] for k, v in draws.items()}
        parts.append(np.asarray(run(state, given, zeros_for(graph, dtypes, m))))
    return np.concatenate(parts)


def generate(
    eval_def: Any,
    state: Any,
    graph: Graph,
    output: str,
    prompt: list[int],
    *,
    n: int,
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> np.ndarray:
    """``n`` continuations of ``prompt`` (token ids) by ``length`` tokens each, as
    ``[n, len(prompt) + length]`` ids. The model's one input is ``[T]`` integer ids and
    ``output`` its ``[T, vocab]`` logits; ``temperature = 0`` takes the most likely
    token, ``top_k = 0`` keeps every token."""
    (inp,) = graph.inputs
    t = int(inp.type.shape[0])
    p = len(prompt)
    total = max(p + length, t)
    buf = np.zeros((n, total), np.dtype(DTYPES[inp.type.dtype]))
    buf[:, :p] = prompt
    port = output_port(graph, output)

    @jax.jit
    def run(state: Any, buf: Any, key: Any) -> Any:
        model, _ = nnx.merge(eval_def, state)

        def one(i: Any, carry: Any) -> Any:
            buf, key = carry
            cur = p + i  # the position to fill
            start = jnp.maximum(0, cur - t)
            window = jax.lax.dynamic_slice_in_dim(buf, start, t, axis=1)
            logits = model.values(**{inp.name: window})[(port.node, port.port)]
            last = jax.lax.dynamic_index_in_dim(logits, cur - 1 - start, 1, keepdims=False)
            last = last.astype(jnp.float32)
            key, sub = jax.random.split(key)
            if temperature == 0:
                tok = jnp.argmax(last, axis=-1)
            else:
                last = last / temperature
                if 0 < top_k < last.shape[-1]:
                    kth = jax.lax.top_k(last, top_k)[0][:, -1:]
                    last = jnp.where(last < kth, -jnp.inf, last)
                tok = jax.random.categorical(sub, last, axis=-1)
            buf = jax.lax.dynamic_update_slice_in_dim(buf, tok[:, None].astype(buf.dtype), cur, 1)
            return buf, key

        return jax.lax.fori_loop(0, length, one, (buf, key))[0]

    out = np.asarray(run(state, buf, jax.random.key(seed)))
    return out[:, : p + length]


def is_language_model(graph: Graph, output: str) -> bool:
    """One integer ``[T]`` input and a ``[T, vocab]`` output: what :func:`generate` drives."""
    if len(graph.inputs) != 1:
        return False
    it = graph.inputs[0].type
    ot = output_port(graph, output).type
    return (
        it.dtype.startswith(("i", "u"))
        and len(it.shape) == 1
        and len(ot.shape) == 2
        and isinstance(it.shape[0], int)
        and ot.shape[0] == it.shape[0]
    )


def rbm_stack(graph: Graph) -> list[Node]:
    """The ``rbm`` nodes fed one from the next, the first from a model input: a
    restricted Boltzmann machine or a deep belief network's stack (empty if none)."""
    inputs = {p.node for p in graph.inputs}
    rbms = [n for n in graph.order() if n.kind_name == "rbm"]
    stack = [n for n in rbms if n.inputs and n.inputs[0][0] in inputs][:1]
    while stack:
        nxt = [n for n in rbms if n.inputs and n.inputs[0] == (stack[-1].id, 0)]
        if not nxt:
            break
        stack.append(nxt[0])
    return stack


def gibbs(eval_def: Any, state: Any, graph: Graph, n: int, steps: int, seed: int) -> np.ndarray:
    """``n`` visible samples of an RBM stack (Hinton, Osindero and Teh 2006): ``steps``
    rounds of alternating Gibbs sampling v → h → v in the top RBM, from visible units
    drawn uniformly (Bernoulli 1/2; a standard normal for Gaussian ones), then one
    top-down pass through the lower RBMs' generative weights, h_{l-1} ~ p(h_{l-1} | h_l);
    the result is the bottom RBM's visible means p(v | h_1), in the input's shape."""
    stack = rbm_stack(graph)
    shape = tuple(int(d) for d in stack[0].in_types[0].shape)

    @jax.jit
    def run(state: Any, key: Any) -> Any:
        model, _ = nnx.merge(eval_def, state)
        rbms = [model.layers[nd.owner] for nd in stack]
        top = rbms[-1]
        k0, kc, kd = jax.random.split(key, 3)
        size = top.visible_bias.shape[0]
        dtype = top.visible_bias.dtype
        if top.visible == "bernoulli":
            v = jax.random.bernoulli(k0, 0.5, (n, size)).astype(dtype)
        else:
            v = jax.random.normal(k0, (n, size), dtype)

        def one(i: Any, v: Any) -> Any:
            kh, kv = jax.random.split(jax.random.fold_in(kc, i))
            h = jax.random.bernoulli(kh, top.hidden_probs(v)).astype(dtype)
            return top.sample_visible(kv, h)

        v = jax.lax.fori_loop(0, steps, one, v)
        # the top RBM's visible units are the hidden units of the one below
        h = v if len(rbms) > 1 else jax.random.bernoulli(kd, top.hidden_probs(v)).astype(dtype)
        for i, r in enumerate(reversed(rbms[1:-1])):
            h = jax.random.bernoulli(jax.random.fold_in(kd, i), r.visible_mean(h)).astype(dtype)
        return rbms[0].visible_mean(h)

    return np.asarray(run(state, jax.random.key(seed))).reshape(n, *shape)
