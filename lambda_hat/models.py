"""Networks over one flat parameter vector.

Samplers see a single 1-D array: that keeps chains a plain vmap axis, makes mass matrices and
preconditioners vectors, and lets one layout serve every sampler family.
"""

from __future__ import annotations

from dataclasses import dataclass


def _activation(name: str):
    import jax

    return {"relu": jax.nn.relu, "tanh": jax.numpy.tanh, "gelu": jax.nn.gelu,
            "identity": lambda h: h}[name]


@dataclass(frozen=True)
class Network:
    """A fully connected network: `sizes` = [in, hidden..., out]."""

    sizes: tuple[int, ...]
    activation: str = "identity"
    bias: bool = False

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def num_params(self) -> int:
        return sum(i * o + (o if self.bias else 0) for i, o in self.layer_shapes)

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
                h = act(h)
        return h

    def end_to_end(self, w):
        """The product W_1 ... W_L of a linear network (no bias, identity activation)."""
        product = None
        for weight, _ in self.layers(w):
            product = weight if product is None else product @ weight
        return product

    def init(self, key, dtype):
        """LeCun-normal weights, zero biases: outputs of order one for inputs of order one."""
        import jax
        import jax.numpy as jnp

        layers = []
        for fan_in, fan_out in self.layer_shapes:
            key, sub = jax.random.split(key)
            weight = jax.random.normal(sub, (fan_in, fan_out), dtype) / jnp.sqrt(fan_in).astype(dtype)
            layers.append((weight, jnp.zeros((fan_out,), dtype) if self.bias else None))
        return self.flatten(layers)
