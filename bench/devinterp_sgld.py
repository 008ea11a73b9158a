"""The issue's SGLD reference workload in devinterp 1.3.2 (PyTorch), for bench/run.py.

Runs in its own virtual environment (bench/run.py makes it) so PyTorch never enters
lambda-hat's dependencies. Prints one JSON object with the sampling wall time.
"""

import json
import math
import time

import torch
from devinterp.optim.sgld import SGLD
from devinterp.slt.sampler import estimate_learning_coeff_with_summary
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
n, chains, steps, batch = 10000, 4, 2000, 256
torch.set_num_threads(2)
model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                            torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                            torch.nn.Linear(64, 1))
x = torch.randn(n, 16)
y = model(x).detach() + 0.1 * torch.randn(n, 1)
loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
started = time.perf_counter()
estimate_learning_coeff_with_summary(
    model, loader, evaluate=lambda model, data: torch.nn.functional.mse_loss(model(data[0]), data[1]),
    sampling_method=SGLD,
    optimizer_kwargs=dict(lr=1e-5, localization=1.0, nbeta=n / math.log(n)),
    num_chains=chains, num_draws=steps, num_burnin_steps=0, num_steps_bw_draws=1,
    device="cpu", verbose=False, online=False)
print(json.dumps({"seconds": time.perf_counter() - started, "chains": chains, "steps": steps,
                  "batch_size": batch, "torch": torch.__version__}))
