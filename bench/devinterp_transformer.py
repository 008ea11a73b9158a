"""devinterp 1.3.2's SGLD on examples/transformer.py's network rebuilt in PyTorch, for
bench/transformer.py: the same architecture and size (one block, 4 heads, d_model 16, MLP 64,
vocabulary p + 1, d = 3968 at p = 23), the same modular-addition data and answer-token
loss, the same chains, steps and batch. Runs in bench/.venv-devinterp (bench/run.py makes
it) so PyTorch never enters lambda-hat's dependencies. Prints one JSON object.

    bench/.venv-devinterp/bin/python bench/devinterp_transformer.py STEPS CHAINS BATCH
"""

import json
import math
import sys
import time

import torch
from devinterp.optim.sgld import SGLD
from devinterp.slt.sampler import estimate_learning_coeff_with_summary
from torch.utils.data import DataLoader, TensorDataset

P, D_MODEL, HEADS, MLP, SEQ = 23, 16, 4, 64, 3


class Transformer(torch.nn.Module):
    """Token and position embeddings, one block of causal multi-head attention (no biases)
    and a ReLU MLP on the residual stream, no layer norm, an unembedding: as
    examples/transformer.py's `forward`."""

    def __init__(self):
        super().__init__()
        vocab = P + 1
        self.embed = torch.nn.Parameter(torch.randn(vocab, D_MODEL))
        self.pos = torch.nn.Parameter(torch.randn(SEQ, D_MODEL))
        self.query, self.key, self.value, self.output = (
            torch.nn.Linear(D_MODEL, D_MODEL, bias=False) for _ in range(4))
        self.mlp_in, self.mlp_out = torch.nn.Linear(D_MODEL, MLP), torch.nn.Linear(MLP, D_MODEL)
        self.unembed = torch.nn.Linear(D_MODEL, vocab, bias=False)
        self.register_buffer("causal", torch.tril(torch.ones(SEQ, SEQ, dtype=torch.bool)))

    def forward(self, tokens):
        h = self.embed[tokens] + self.pos[: tokens.shape[1]]
        n, seq, _ = h.shape

        def split(z):
            return z.view(n, seq, HEADS, D_MODEL // HEADS).transpose(1, 2)

        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(D_MODEL // HEADS)
        scores = scores.masked_fill(~self.causal[:seq, :seq], -1e9)
        mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, seq, D_MODEL)
        h = h + self.output(mixed)
        h = h + self.mlp_out(torch.relu(self.mlp_in(h)))
        return self.unembed(h)


def main() -> None:
    steps, chains, batch = (int(value) for value in sys.argv[1:4])
    torch.manual_seed(0)
    torch.set_num_threads(2)
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    x = torch.stack([a, b, torch.full_like(a, P)], dim=1)
    answer = (a + b) % P
    n = len(x)
    model = Transformer()
    loader = DataLoader(TensorDataset(x, answer), batch_size=batch, shuffle=True)

    def evaluate(model, data):
        return torch.nn.functional.cross_entropy(model(data[0])[:, -1], data[1])

    started = time.perf_counter()
    estimate_learning_coeff_with_summary(
        model, loader, evaluate=evaluate, sampling_method=SGLD,
        optimizer_kwargs=dict(lr=1e-4, localization=100.0, nbeta=n / math.log(n)),
        num_chains=chains, num_draws=steps, num_burnin_steps=0, num_steps_bw_draws=1,
        device="cpu", verbose=False, online=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "steps": steps, "chains": chains, "batch_size": batch,
                      "d": sum(p.numel() for p in model.parameters()), "n": n,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
