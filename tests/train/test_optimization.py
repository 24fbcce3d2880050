"""The eager optimisers (asym.train.optimization): torch's updates bit for bit, without torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from asym.train.optimization import EagerAdam, EagerAdamW, build_scheduler


def recipe(optimizer: str, scheduler: str | None = "cosine", betas: tuple[float, float] | None = (0.9, 0.98)):
    return SimpleNamespace(optimizer=optimizer, weight_decay=0.01, weight_decay_on="all", betas=betas,
                           lr_for=lambda d: 1e-2, scheduler=scheduler, epochs=5,
                           plateau=SimpleNamespace(factor_for=lambda d: 0.5, patience=1))


def trajectory(cls: type[torch.optim.Optimizer], amsgrad: bool, steps: int = 12) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 1))
    groups = [{"params": list(net[0].parameters()), "weight_decay": 0.05},
              {"params": list(net[2].parameters()), "weight_decay": 0.0}]
    opt = cls(groups, lr=3e-2, betas=(0.8, 0.95), amsgrad=amsgrad)
    sched = build_scheduler(opt, recipe("adamw"), "dvlog")
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    for i in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        sched.step()
        if i == steps // 2:                        # a resumed run reloads the state
            opt.load_state_dict(opt.state_dict())
    return [p.detach().clone() for p in net.parameters()] + [
        t.clone() for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize(("ours", "theirs"), [(EagerAdam, torch.optim.Adam), (EagerAdamW, torch.optim.AdamW)])
def test_the_eager_optimisers_update_as_torchs_bit_for_bit(ours, theirs, amsgrad):
    a, b = trajectory(ours, amsgrad), trajectory(theirs, amsgrad)
    assert len(a) == len(b) > 4
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


CHILD = """
import sys, torch
from torch import nn
from types import SimpleNamespace
from asym.train.optimization import build_optimizer, build_scheduler
r = SimpleNamespace(optimizer=sys.argv[1], weight_decay=0.01, weight_decay_on="all", betas=None,
                    lr_for=lambda d: 1e-2, scheduler="plateau", epochs=3,
                    plateau=SimpleNamespace(factor_for=lambda d: 0.5, patience=1))
net = nn.Linear(4, 1)
opt = build_optimizer(net, r, "dvlog")
sched = build_scheduler(opt, r, "dvlog")
for _ in range(3):
    opt.zero_grad()
    net(torch.randn(8, 4)).sum().backward()
    opt.step()
    sched.step(1.0)
opt.load_state_dict(opt.state_dict())
print(type(opt).__name__, "torch._dynamo" in sys.modules)
"""


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_training_steps_never_import_torch_dynamo(optimizer):
    out = subprocess.run([sys.executable, "-c", CHILD, optimizer], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [f"Eager{'AdamW' if optimizer == 'adamw' else 'Adam'}", "False"], out.stderr


def test_where_torch_dynamo_is_imported_torchs_own_optimiser_is_used():
    child = "import torch._dynamo\n" + CHILD
    out = subprocess.run([sys.executable, "-c", child, "adamw"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["AdamW", "True"], out.stderr
