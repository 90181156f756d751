"""Regenerate the small datasets the examples ship with (deterministic).

    python examples/data/make_data.py

All come from scikit-learn's 8x8 digits, stored as uint8 (pixel values 0..16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

HERE = Path(__file__).parent


def main() -> None:
    d = load_digits()
    images = d.images.astype(np.uint8)[..., None]  # [N, 8, 8, 1]
    labels = d.target.astype(np.int32)
    # two views of one digit: its top and bottom halves
    np.savez_compressed(
        HERE / "digit_halves.npz", top=images[:, :4], bottom=images[:, 4:], label=labels
    )
    # pairs for a Siamese network: 1 when both images show the same digit
    rng = np.random.default_rng(0)
    n = 4000
    left = rng.integers(0, len(labels), n)
    same = rng.random(n) < 0.5
    right = np.empty(n, np.int64)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    for i in range(n):
        c = labels[left[i]]
        if same[i]:
            right[i] = rng.choice(by_class[c])
        else:
            other = rng.choice([k for k in range(10) if k != c])
            right[i] = rng.choice(by_class[other])
    np.savez_compressed(
        HERE / "digit_pairs.npz",
        left=images[left],
        right=images[right],
        label=(labels[left] == labels[right]).astype(np.float32),
    )
    # transfer learning: pretrain to tell the ten digits apart on the first half of the
    # images; fine-tune to tell even from odd on 150 images of the second half, tested
    # on the rest of it
    half = len(labels) // 2
    first, second = np.arange(half), np.arange(half, len(labels))
    cut = int(half * 0.8)
    np.savez_compressed(
        HERE / "digits_first_half.npz",
        x_train=images[first[:cut]],
        y_train=labels[first[:cut]],
        x_test=images[first[cut:]],
        y_test=labels[first[cut:]],
    )
    few = rng.permutation(second)
    parity = (labels % 2).astype(np.int32)
    np.savez_compressed(
        HERE / "digits_parity_150.npz",
        x_train=images[few[:150]],
        y_train=parity[few[:150]],
        x_test=images[few[150:]],
        y_test=parity[few[150:]],
    )
    # one .npy file per array, memory-mapped by the `npy` source (streaming, docs/scale.md)
    np.save(HERE / "digits_x.npy", images)
    np.save(HERE / "digits_y.npy", labels.astype(np.int8))
    # two targets: the digit and whether it is even or odd
    np.savez_compressed(
        HERE / "digits_parity.npz", x=images, digit=labels, parity=(labels % 2).astype(np.int32)
    )


if __name__ == "__main__":
    main()
