from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from asym.config import load_params
from asym.models import factory
from asym.models.layers import ConvBlock, MaskedBatchNorm1d, length_mask, param_groups
from asym.nn.mamba import Mamba
from tests.project import ROOT

PARAMS = load_params(ROOT / "params.yaml")


def _valid_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[i, :n] for i, n in enumerate(lengths.tolist())])


def test_masked_batchnorm_is_batchnorm_over_valid_frames_only():
    torch.manual_seed(0)
    masked, plain = MaskedBatchNorm1d(6), nn.BatchNorm1d(6)
    with torch.no_grad():
        masked.weight.uniform_(0.5, 2)
        masked.bias.normal_()
    plain.load_state_dict(masked.state_dict())
    lengths = torch.tensor([9, 4, 2])
    mask = length_mask(lengths, 9)
    for step in range(3):
        x = torch.randn(3, 9, 6) * 3 + 1
        x[~mask] = 1e3 * (step + 1)                       # padding must not reach the statistics
        y = masked.train()(x, mask)
        torch.testing.assert_close(_valid_frames(y, lengths), plain.train()(_valid_frames(x, lengths)))
        assert y[~mask].abs().sum() == 0
    torch.testing.assert_close(masked.running_mean, plain.running_mean)
    torch.testing.assert_close(masked.running_var, plain.running_var)
    assert int(masked.num_batches_tracked) == 3
    x = torch.randn(3, 9, 6)
    torch.testing.assert_close(_valid_frames(masked.eval()(x, mask), lengths), plain.eval()(_valid_frames(x, lengths)))


def test_conv_block_with_batch_norm_has_a_bias_free_convolution_and_a_projected_skip():
    block = ConvBlock(8, 3, 0.0, out_dim=12, batch_norm=True)
    assert block.conv.bias is None and isinstance(block.norm, MaskedBatchNorm1d)
    assert block.skip is not None and block.skip.bias is None
    assert ConvBlock(8, 3, 0.0).conv.bias is not None and ConvBlock(8, 3, 0.0).skip is None
    lengths = torch.tensor([7, 3])
    y = block.eval()(torch.randn(2, 7, 8), length_mask(lengths, 7))
    assert y.shape == (2, 7, 12) and y[1, 3:].abs().sum() == 0


def _groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    groups = param_groups(model, weight_decay=0.05)
    by_decay = {g["weight_decay"]: g["params"] for g in groups}
    assert set(by_decay) == {0.05, 0.0}
    return by_decay[0.05], by_decay[0.0]


@pytest.mark.parametrize("name", ["asym", "depmamba"])
@pytest.mark.parametrize("copied", [False, True])
def test_param_groups_exempt_state_matrices_skips_norms_and_biases_from_weight_decay(name, copied):
    torch.manual_seed(0)
    model = factory.from_params(name, PARAMS, widths=(25, 136))
    model = copy.deepcopy(model) if copied else model     # deepcopy drops attributes set on a Parameter
    decay, no_decay = _groups(model)
    ids = [id(p) for p in decay + no_decay]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}   # each once
    exempt = {id(p) for p in no_decay}
    expected = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if (isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)) or pname in ("A_log", "D", "bias")
                    or pname.endswith("_bias")):
                expected.add(id(p))
    assert exempt == expected
    mambas = [m for m in model.modules() if isinstance(m, Mamba)]
    assert mambas and all(id(m.fwd.A_log) in exempt and id(m.bwd.D) in exempt for m in mambas)
    assert all(id(m.in_proj.weight) not in exempt and id(m.fwd.x_proj.weight) not in exempt for m in mambas)
    shared = mambas[0].fwd.A_log
    assert sum(p is shared for p in no_decay) == 1 and sum(m.fwd.A_log is shared for m in mambas) == 2
    torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)   # the optimiser takes the groups as they are
