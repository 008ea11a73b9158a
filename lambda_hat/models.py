"""Networks over one flat parameter vector.

Samplers see a single 1-D array: that keeps chains a plain vmap axis, makes mass matrices and
preconditioners vectors, and lets one layout serve every sampler family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _activation(name: str):
    import jax

    return {"relu": jax.nn.relu, "tanh": jax.numpy.tanh, "gelu": jax.nn.gelu,
            "identity": lambda h: h}[name]


INIT_GAINS = {
    "lecun": lambda fan_in, fan_out: 1.0 / fan_in,
    "he": lambda fan_in, fan_out: 2.0 / fan_in,
    "xavier": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),
    "normal": lambda fan_in, fan_out: 1.0,
}
"""The variance of a weight for each initialisation, before `init_scale` multiplies its
standard deviation."""


def _layer_norm(h):
    """Standardised over features, with no gain or shift of its own: the next layer's weights
    and bias already provide them, so the network gains no parameters."""
    import jax.numpy as jnp

    centred = h - h.mean(axis=-1, keepdims=True)
    return centred / jnp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-5)


@dataclass(frozen=True)
class Network:
    """A fully connected network: `sizes` = [in, hidden..., out]; `layer_norm` normalises
    each hidden layer's pre-activations."""

    sizes: tuple[int, ...]
    activation: str = "identity"
    bias: bool = False
    layer_norm: bool = False
    init_kind: str = "lecun"
    init_scale: float = 1.0

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def num_params(self) -> int:
        return sum(i * o + (o if self.bias else 0) for i, o in self.layer_shapes)

    def parameter_groups(self) -> list:
        """Each layer's weight and bias as a slice of the flat vector (`lambda_hat.restrict`)."""
        from .restrict import Group

        groups, offset = [], 0
        for layer, (fan_in, fan_out) in enumerate(self.layer_shapes):
            groups.append(Group(f"{layer}/weight", offset, offset + fan_in * fan_out, layer,
                                (fan_in, fan_out)))
            offset += fan_in * fan_out
            if self.bias:
                groups.append(Group(f"{layer}/bias", offset, offset + fan_out, layer,
                                    (fan_out,)))
                offset += fan_out
        return groups

    def layers(self, w):
        """Split the flat vector into [(W, b or None), ...] with W of shape (fan_in, fan_out)."""
        out, offset = [], 0
        for fan_in, fan_out in self.layer_shapes:
            weight = w[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            bias = None
            if self.bias:
                bias = w[offset : offset + fan_out]
                offset += fan_out
            out.append((weight, bias))
        return out

    def flatten(self, layers):
        import jax.numpy as jnp

        parts = []
        for weight, bias in layers:
            parts.append(weight.reshape(-1))
            if self.bias:
                parts.append(bias)
        return jnp.concatenate(parts)

    def apply(self, w, x):
        act = _activation(self.activation)
        layers = self.layers(w)
        h = x
        for index, (weight, bias) in enumerate(layers):
            h = h @ weight
            if bias is not None:
                h = h + bias
            if index < len(layers) - 1:
                h = act(_layer_norm(h) if self.layer_norm else h)
        return h

    def end_to_end(self, w):
        """The product W_1 ... W_L of a linear network (no bias, identity activation)."""
        product = None
        for weight, _ in self.layers(w):
            product = weight if product is None else product @ weight
        return product

    def init(self, key, dtype):
        """Normal weights of the `init_kind` variance (LeCun by default: outputs of order one
        for inputs of order one) times `init_scale`; zero biases."""
        import jax
        import jax.numpy as jnp

        layers = []
        for fan_in, fan_out in self.layer_shapes:
            key, sub = jax.random.split(key)
            std = self.init_scale * np.sqrt(INIT_GAINS[self.init_kind](fan_in, fan_out))
            weight = jax.random.normal(sub, (fan_in, fan_out), dtype) * jnp.asarray(std, dtype)
            layers.append((weight, jnp.zeros((fan_out,), dtype) if self.bias else None))
        return self.flatten(layers)
