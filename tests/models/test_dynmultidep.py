"""DynMultiDep as asym.models.baselines.dynmultidep describes it: its public code's parameter count,
the collaborative Bi-Mamba experts, and DynMM's gate (straight-through hard choice, soft
gradient, the same in training and evaluation)."""

from __future__ import annotations

import pytest
import torch

from asym.config import load_params
from asym.models import factory
from asym.models.baselines.dynmultidep import straight_through_softmax
from tests.project import ROOT

PARAMS = load_params(ROOT / "params.yaml")
PAPER = PARAMS.at_scale("paper")


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def mamba_layer(d: int, d_inner: int, d_state: int, d_conv: int = 4) -> int:
    """One modality's half of its mm_bimamba "v2" layer, A excluded (shared): in_proj, out_proj and
    per direction conv, x_proj, dt_proj, D."""
    dt_rank = -(-d // 16)
    branch = d_inner * (d_conv + 1) + d_inner * (dt_rank + 2 * d_state) + dt_rank * d_inner + d_inner + d_inner
    return d * 2 * d_inner + d_inner * d + 2 * branch


@pytest.mark.parametrize(("dataset", "audio", "d_state"), [("dvlog", 25, 12), ("lmvd", 128, 16)])
def test_dynmultidep_has_the_parameters_of_its_code_less_its_unused_downsample(dataset, audio, d_state):
    d, d_inner, visual = 256, 1024, 136
    by_hand = ((audio + 1) * d + (visual + 1) * d                     # a_input_proj, v_input_proj
               + 2 * mamba_layer(d, d_inner, d_state) + 2 * d_inner * d_state    # + A fwd and bwd, shared
               + 2 * 2 * d                                            # norm1, norm2
               + (2 * d + 1) * 64 + 65 * 2                            # modality_gate
               + (d + 1) * 64 + 65)                                   # classifier_layer
    assert factory.parameter_count("dynmultidep", PARAMS, "paper", dataset) == by_hand


def test_dynmultidep_experts_share_one_state_matrix_per_direction():
    m = factory.from_params("dynmultidep", PAPER, "dvlog", widths=(25, 136))
    assert len(m.ssm_a) == len(m.ssm_v) == 1
    a, v = m.ssm_a[0].block, m.ssm_v[0].block
    assert a.fwd.A_log is v.fwd.A_log and a.bwd.A_log is v.bwd.A_log and a.fwd.A_log is not a.bwd.A_log
    assert a.in_proj.weight is not v.in_proj.weight and a.fwd.D is not v.fwd.D
    assert a.fwd.A_log.shape == (1024, 12) and m.ssm_a[0].norm.eps == 1e-6
    assert m.proj_a.bias is not None                                  # nn.Linear with its bias
    # its backward dt_proj keeps PyTorch's default initialisation: steps far above mamba-ssm's [1e-3, 0.1]
    assert torch.nn.functional.softplus(a.bwd.dt_proj.bias).min() > 0.5
    assert torch.nn.functional.softplus(a.fwd.dt_proj.bias).max() < 0.11


def test_hard_gate_picks_one_modality_forward_and_passes_the_soft_gradient_back():
    logits = torch.tensor([[0.3, -0.2], [-1.0, 2.0]], requires_grad=True)
    w = straight_through_softmax(logits, temp=1.0, hard=True)
    torch.testing.assert_close(w.detach(), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    (w * torch.tensor([[1.0, 3.0], [2.0, 5.0]])).sum().backward()
    soft = torch.softmax(logits.detach(), -1)
    expected = torch.func.vjp(lambda x: torch.softmax(x, -1), logits.detach())[1](torch.tensor([[1.0, 3.0],
                                                                                                [2.0, 5.0]]))[0]
    torch.testing.assert_close(logits.grad, expected)
    torch.testing.assert_close(straight_through_softmax(logits.detach() * 2, temp=2.0, hard=False), soft)


@pytest.mark.parametrize("hard_gate", [True, False])
def test_the_fused_vector_is_the_gated_mix_of_the_two_pooled_experts_in_eval_and_train(hard_gate):
    torch.manual_seed(0)
    m = factory.from_params("dynmultidep", PARAMS, widths=(25, 136), hard_gate=hard_gate, dropout=0.0)
    audio, visual, lengths = torch.randn(3, 12, 25), torch.randn(3, 12, 136), torch.tensor([12, 9, 5])
    seen = {}
    m.gate.register_forward_hook(lambda mod, args, out: seen.update(pooled=args[0], logits=out))
    m.head.register_forward_hook(lambda mod, args, out: seen.update(fused=args[0]))
    for mode in (m.eval, m.train):
        mode()
        with torch.no_grad():
            m(audio, visual, lengths)
        a, v = seen["pooled"].chunk(2, dim=-1)
        soft = torch.softmax(seen["logits"], -1)
        w = torch.nn.functional.one_hot(soft.argmax(-1), 2).float() if hard_gate else soft
        torch.testing.assert_close(seen["fused"], w[:, :1] * a + w[:, 1:] * v)
        if not hard_gate:
            assert ((w > 0) & (w < 1)).all()
