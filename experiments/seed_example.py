"""The seed question, answered in code.

A Keras 1 layer ``Convolution1D(nb_filter=111, filter_length=5, border_mode='valid', activation='relu',
subsample_length=1)`` over 300-d word vectors shows a kernel of shape (5, 1, 300, 111). What is each axis, what is
the output shape and why, and how do I get filter j's feature map?

    python experiments/seed_example.py [--batch 2] [--length 50] [--filter 7]
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=50, help="sentence length in tokens")
    p.add_argument("--filter", type=int, default=7, help="which filter's feature map to show")
    args = p.parse_args(argv)

    import jax.numpy as jnp

    from jaxconv import layouts, shapes
    from jaxconv.compat.keras1 import Convolution1D

    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.05, (5, 1, 300, 111)).astype(np.float32)  # a Keras 1 kernel, as saved by Keras 1
    b = rng.normal(0, 0.05, (111,)).astype(np.float32)
    x = rng.normal(0, 1, (args.batch, args.length, 300)).astype(np.float32)  # (batch, tokens, 300-d word vectors)

    conv = Convolution1D(nb_filter=111, filter_length=5, border_mode="valid", activation="relu", subsample_length=1,
                         input_dim=300, weights=[W, b])
    print("1. What each axis of the Keras 1 kernel means")
    print(f"   Keras 1 kernel {W.shape} = {layouts.describe(W.shape, 'keras1')}")
    print(f"   jaxconv kernel {conv.kernel.shape} = {layouts.describe(conv.kernel.shape, 'jaxconv')}")
    print(f"   PyTorch weight {layouts.convert(W, 'keras1', 'torch').shape} = "
          f"{layouts.describe(layouts.convert(W, 'keras1', 'torch').shape, 'torch')}")
    print("   width: 5 consecutive tokens; in: the 300 embedding dimensions; out: the 111 filters. The '1' is a unit")
    print("   axis left over from Keras 1 running a 1-D conv as a 2-D conv over a width-1 image.")

    print("\n2. The output shape, and why")
    y = conv(jnp.asarray(x))
    print(f"   input {x.shape} -> output {tuple(y.shape)}   (batch, out_length, filters)")
    print("   out_length = floor((L + lo + hi - d*(k-1) - 1) / s) + 1   (L length, lo/hi padding, d dilation, k kernel, "
          "s stride)")
    print(f"           {shapes.output_length_formula(args.length, 5)}")
    print(f"   padding (lo, hi) = {conv.padding_for(args.length)}; parameters = 5*300*111 + 111 = "
          f"{shapes.conv_params(300, 111, 5)}")

    j = args.filter
    fmap = np.asarray(y[..., j])
    print(f"\n3. Filter {j}'s feature map: out[..., {j}], shape {fmap.shape} (batch, out_length)")
    # The same numbers by hand: correlate filter j's (width, in) weights with each 5-token window.
    k = np.asarray(conv.filter_kernel(j))  # (5, 300)
    by_hand = np.maximum(np.einsum("btwc,wc->bt", np.lib.stride_tricks.sliding_window_view(x, 5, axis=1)
                                   .transpose(0, 1, 3, 2), k) + b[j], 0)
    print(f"   first positions: {np.array2string(fmap[0, :6], precision=4)}")
    print(f"   by hand (sum over window of x * filter_kernel({j}) + bias, relu): max |difference| = "
          f"{np.abs(by_hand - fmap).max():.2e}")
    print(f"   position t sees tokens [t, t+5): output 0 <- tokens {shapes.input_span([(5,)], 0, args.length)}, "
          f"output {y.shape[1] - 1} <- tokens {shapes.input_span([(5,)], y.shape[1] - 1, args.length)}")


if __name__ == "__main__":
    main()
