"""asym.cost: the selective scan's FLOP formula, PyTorch's counter on known layers, the scans
reaching the counter, every model's row, peak memory, and the `cost` block's schema."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from asym import cost
from asym.config import load_params
from asym.errors import ConfigError
from asym.models import registry
from asym.nn import mamba, mamba2, ssm

ROOT = Path(__file__).resolve().parents[1]


# --- the selective scan's formula ---------------------------------------------------------------
def test_the_scan_formula_is_the_hand_count_of_one_step():
    # one step, one channel, one state: dt*u (1) + decay dt*A, exp (2) + (dt*u)*B (1) + update (2) + readout (2)
    assert cost.selective_scan_flops(1, 1, 1, 1) == 1 + 2 + 1 + 2 + 2
    # + delta_bias (1) + softplus (3) + D skip (2) + SiLU(z) gate and its product (6)
    assert cost.selective_scan_flops(1, 1, 1, 1, delta_bias=True, softplus=True, skip=True, gate=True) == 8 + 1 + 3 + 2 + 6
    # every (batch, channel, step) pays the per-channel part once and the per-state part per state
    assert cost.selective_scan_flops(2, 3, 5, 4, skip=True) == 2 * 3 * 5 * (1 + 2 + 7 * 4)


class Counted:
    """A float that counts every arithmetic operation done with it (into `ops`)."""

    ops = 0

    def __init__(self, v: float) -> None:
        self.v = float(v)

    @classmethod
    def _of(cls, x: object) -> float:
        return x.v if isinstance(x, Counted) else float(x)

    def _op(self, v: float) -> Counted:
        Counted.ops += 1
        return Counted(v)

    def __add__(self, o):
        return self._op(self.v + self._of(o))

    __radd__ = __add__

    def __mul__(self, o):
        return self._op(self.v * self._of(o))

    __rmul__ = __mul__

    def __rtruediv__(self, o):
        return self._op(self._of(o) / self.v)

    def __neg__(self):
        return self._op(-self.v)

    def exp(self):
        return self._op(math.exp(self.v))

    def log(self):
        return self._op(math.log(self.v))


def scalar_scan(u, delta, A, B, C, D, z, bias):
    """mamba-ssm's selective scan, one scalar operation at a time on Counted numbers."""
    n_b, n_d, L = u.shape
    N = A.shape[1]
    out = torch.empty(n_b, n_d, L, dtype=torch.float64)
    for b in range(n_b):
        for d in range(n_d):
            h = [Counted(0.0) for _ in range(N)]
            for t in range(L):
                dt = Counted(delta[b, d, t]) + float(bias[d])
                dt = ((dt.exp()) + 1.0).log()                               # softplus
                du = dt * float(u[b, d, t])
                y = Counted(0.0)
                for n in range(N):
                    decay = (dt * float(A[d, n])).exp()
                    h[n] = decay * h[n] + du * float(B[b, n, t])
                    y = y + h[n] * float(C[b, n, t])
                y = y + Counted(float(D[d])) * float(u[b, d, t])               # D skip
                zz = Counted(z[b, d, t])
                y = y * (zz * (1.0 / ((-zz).exp() + 1.0)))                     # SiLU(z) gate
                out[b, d, t] = y.v
    return out


def test_the_scan_formula_counts_every_operation_of_the_scan_it_describes():
    g = torch.Generator().manual_seed(0)
    n_b, n_d, N, L = 2, 3, 4, 5
    u, delta, z = (torch.randn(n_b, n_d, L, generator=g, dtype=torch.float64) for _ in range(3))
    A = -torch.rand(n_d, N, generator=g, dtype=torch.float64)
    B, C = (torch.randn(n_b, N, L, generator=g, dtype=torch.float64) for _ in range(2))
    D, bias = torch.randn(n_d, generator=g, dtype=torch.float64), torch.randn(n_d, generator=g, dtype=torch.float64)
    Counted.ops = 0
    counted = scalar_scan(u, delta, A, B, C, D, z, bias)
    # the loop computes the scan the models run
    reference = ssm.selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True, backend="torch")
    torch.testing.assert_close(counted, reference)
    assert Counted.ops == cost.selective_scan_flops(n_b, n_d, L, N, delta_bias=True, softplus=True, skip=True, gate=True)


# --- the counter --------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [False, True])
def test_the_counter_counts_a_linear_layer_as_2_in_out_T(bias):
    d_in, d_out, T = 7, 5, 11
    flops = cost.count_flops(nn.Linear(d_in, d_out, bias=bias), torch.randn(1, T, d_in))
    assert sum(flops.values()) == 2 * d_in * d_out * T


def test_an_lstm_layer_and_cpu_attention_are_counted():
    d_in, hidden, T = 6, 4, 9
    lstm = nn.LSTM(d_in, hidden, batch_first=True, bidirectional=True)
    assert sum(cost.count_flops(lstm, torch.randn(1, T, d_in)).values()) == 2 * 2 * T * 4 * hidden * (d_in + hidden)

    class Attend(nn.Module):
        def forward(self, q):
            return nn.functional.scaled_dot_product_attention(q, q, q)

    heads, E = 2, 8
    flops = cost.count_flops(Attend(), torch.randn(1, heads, T, E))
    assert sum(flops.values()) == 2 * (2 * heads * T * T * E)      # QK^T and (softmax)V


def test_a_mamba_blocks_scans_reach_the_counter_and_the_function_is_restored():
    torch.manual_seed(0)
    d_model, d_state, T = 8, 4, 13
    block = mamba.Mamba(d_model, d_state=d_state, expand=2, bidirectional=True)
    original = mamba.selective_scan
    flops = cost.count_flops(block, torch.randn(1, T, d_model), torch.tensor([T]))
    assert mamba.selective_scan is original
    scan = cost.selective_scan_flops(1, block.d_inner, T, d_state, delta_bias=True, softplus=True, skip=True, gate=True)
    assert flops[f"{cost.LIBRARY}.selective_scan"] == 2 * scan         # forward and backward branches
    assert sum(v for k, v in flops.items() if k.startswith("aten.")) > 0


def test_the_ssd_formula_is_the_hand_count_of_one_step():
    # one step, one head of one channel, one state: decay dt*A, exp (2) + dt*x (1) + (dt*x)*B (1)
    # + update (2) + readout (2)
    assert cost.ssd_flops(1, 1, 1, 1, 1) == 2 + 1 + 1 + 2 + 2
    # + dt_bias (1) + softplus (3) per head; + D skip (2) + SiLU(z) gate (6) per channel
    assert cost.ssd_flops(1, 1, 1, 1, 1, dt_bias=True, softplus=True, skip=True, gate=True) == 8 + 1 + 3 + 2 + 6
    # the decay is paid per head, not per channel and state as in the selective scan
    assert cost.ssd_flops(2, 5, 3, 4, 6, skip=True) == 2 * 5 * 3 * (2 + 4 * (1 + 2 + 5 * 6))


def test_a_mamba2_blocks_scan_reaches_the_counter():
    torch.manual_seed(0)
    d_model, d_state, headdim, T = 16, 4, 8, 11
    block = mamba2.Mamba2(d_model, d_state=d_state, headdim=headdim, expand=2, bidirectional=True)
    original = mamba2.ssd
    flops = cost.count_flops(block, torch.randn(1, T, d_model), torch.tensor([T]))
    assert mamba2.ssd is original
    heads = 2 * d_model // headdim
    scan = cost.ssd_flops(1, T, heads, headdim, d_state, dt_bias=True, softplus=True, skip=True)
    # both directions run as one call on a doubled batch
    assert flops[f"{cost.LIBRARY}.ssd"] == 2 * scan


def test_a_second_scan_registers_in_one_line(monkeypatch):
    def double(x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    monkeypatch.setattr(mamba, "double_for_test", double, raising=False)
    name = f"double_for_test_{id(double)}"
    scan = cost.register_scan("asym.nn.mamba:double_for_test", lambda x: 3 * x.numel(), name=name)
    try:
        class Doubler(nn.Module):
            def forward(self, x):
                return mamba.double_for_test(x)

        assert cost.count_flops(Doubler(), torch.randn(4, 5)) == {f"{cost.LIBRARY}.{name}": 60}
        assert mamba.double_for_test is double
        assert scan.name in cost.SCANS
    finally:
        cost.SCANS.pop(name)


# --- every model ------------------------------------------------------------------------------
LINEAR_MODELS = ("depmamba", "caf-mamba", "bilstm", "asym-no-crossattn", "asym-no-cmim")   # no attention over time
SHORT = [0.25, 0.5]        # minutes: 15 and 30 frames


@pytest.fixture(scope="module")
def rows():
    params = load_params(ROOT / "params.yaml")
    return cost.measure(params, datasets=["dvlog"], minutes=SHORT, threads=1)


def test_every_registered_model_gets_a_row_per_length(rows):
    names = registry.names()
    assert sorted({(r["model"], r["minutes"]) for r in rows}) == sorted((m, x) for m in names for x in SHORT)
    for r in rows:
        assert r["params"] > 0 and r["macs"] > 0 and r["latency_s"] > 0, r
        assert r["frames"] == round(r["minutes"] * cost.FRAMES_PER_MINUTE)


def test_macs_grow_with_the_vlog_and_linearly_for_recurrent_models(rows):
    by = {(r["model"], r["minutes"]): r for r in rows}
    for name in registry.names():
        assert by[(name, SHORT[1])]["macs"] >= by[(name, SHORT[0])]["macs"], name
    for name in LINEAR_MODELS:
        per_min = [by[(name, m)]["macs_per_min"] for m in SHORT]
        assert per_min[1] == pytest.approx(per_min[0], rel=0.05), name
    mambas = [n for n in registry.names() if "mamba" in n or n == "asym"]
    assert all(by[(n, SHORT[0])]["scan_share"] > 0 for n in mambas if n != "asym-transformer")
    assert by[("bilstm", SHORT[0])]["scan_share"] == 0


@pytest.mark.skipif(not cost.memory_available(), reason="peak resident memory needs Linux's /proc and glibc")
def test_peak_memory_sees_what_a_pass_allocates():
    mb = 64

    class Allocates(nn.Module):
        def forward(self, x):
            return torch.ones(mb * 2 ** 20 // 4).sum() + x.sum()

    # the kernel's resident-set counts lag by up to a few hundred kB (per-thread batches of pages)
    low, high = (mb - 1) * 2 ** 20, (mb + 16) * 2 ** 20
    assert low <= cost.peak_rss_bytes(Allocates(), (torch.zeros(3),)) < high
    # memory the first pass freed is handed back, so a second pass shows the same peak
    assert low <= cost.peak_rss_bytes(Allocates(), (torch.zeros(3),)) < high


# --- the params block ---------------------------------------------------------------------------
def _params_with(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["cost"].update(minuts=[1]), "cost.minuts: unknown key (a typo?)"),
    (lambda r: r["cost"]["minutes"].update(demo=[0, 1]), "cost.minutes.demo.0"),
    (lambda r: r["cost"]["repeats"].update(paper=0), "cost.repeats.paper"),
])
def test_a_bad_cost_block_is_refused_naming_the_key(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_params(_params_with(tmp_path, edit))


def test_a_params_file_without_a_cost_block_is_refused_only_by_asym_cost(tmp_path):
    params = load_params(_params_with(tmp_path, lambda r: r.pop("cost")))
    with pytest.raises(ConfigError, match="no `cost` block"):
        _ = params.cost
