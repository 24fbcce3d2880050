"""CAF-Mamba, MDD-Net and DepMamba against their public code: parameter counts worked out by hand
from the code's layer shapes, the blocks and initialisations the code builds, and what we keep of
its slips. Padding exactness, gradients and batch independence of every registry model are
tested in test_registry_models.py; a training step of each in test_training_options.py."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
import torch.nn.functional as F

from asym.config import load_params
from asym.data.formats import input_widths
from asym.models import factory
from asym.models.layers import length_mask
from asym.nn.mamba import Mamba
from tests.project import ROOT

PARAMS = load_params(ROOT / "params.yaml")
PAPER = PARAMS.at_scale("paper")
WIDTHS = input_widths()


@functools.cache
def paper_model(name: str, dataset: str) -> torch.nn.Module:
    """The paper-scale build on the dataset's widths, built once for this module's tests."""
    torch.manual_seed(1)
    return factory.from_params(name, PAPER, dataset, widths=WIDTHS[dataset])


def n_params(model, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def conv(i: int, o: int, k: int, bias: bool = True) -> int:
    return i * o * k + (o if bias else 0)


def mamba_ssm(d: int, d_state: int, expand: int = 4, d_conv: int = 4) -> int:
    """mamba_ssm.Mamba(d_model=d): in_proj (no bias), depthwise conv1d (bias), x_proj, dt_proj, A_log, D, out_proj."""
    inner, rank = expand * d, math.ceil(d / 16)
    return (linear(d, 2 * inner, False) + inner * d_conv + inner + linear(inner, rank + 2 * d_state, False)
            + linear(rank, inner) + inner * d_state + inner + linear(inner, d, False))


def test_each_peers_paper_block_states_each_value_once():
    """A per-dataset refinement that repeats its family's own value says it twice (and lets the
    two drift apart): every `by_dataset` entry of a peer's paper block changes something."""
    import yaml

    blocks = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["paper"]
    for family in ("depmamba", "caf_mamba", "mdd_net"):
        block = blocks[family]
        for dataset, refined in block.get("by_dataset", {}).items():
            assert refined, (family, dataset)
            same = {k: v for k, v in refined.items() if block.get(k) == v}
            assert not same, f"model.paper.{family}.by_dataset.{dataset} repeats {same}"
    assert PAPER.model_config("caf-mamba", "lmvd").d_state == 16 and PAPER.model_config("caf-mamba", "dvlog").d_state == 12
    assert PAPER.model_config("depmamba", "lmvd").d_state == 16 and PAPER.model_config("depmamba", "dvlog").d_state == 12


# --- CAF-Mamba (zbw-zhou/CAF-Mamba @15ca7fc, models/CafMambaBimodal.py, config/config.yaml) ----------
@pytest.mark.parametrize(("dataset", "audio", "d_state"), [("dvlog", 25, 12), ("lmvd", 128, 16)])
def test_caf_mamba_has_the_parameters_of_its_code_at_its_configuration(dataset, audio, d_state):
    d = 256
    res_mamba = mamba_ssm(d, d_state) + 2 * d                       # ResidualMambaLayer: Mamba + LayerNorm(d)
    by_hand = (conv(audio, d, 1, False) + conv(136, d, 1, False)     # conv_audio, conv_video
               + 2 * res_mamba                                      # UFE_a, UFE_v
               + res_mamba                                          # CIME[0]
               + linear(3, 3) + conv(3 * d, 2 * d, 1, False) + conv(2 * d, d, 1, False)   # ModalWiseAttention
               + res_mamba                                          # MME
               + linear(d, 1))                                      # output
    assert by_hand == {"dvlog": 4_020_749, "lmvd": 4_096_269}[dataset]
    assert factory.parameter_count("caf-mamba", PARAMS, "paper", dataset) == by_hand


def test_caf_mamba_is_built_as_its_code_builds_it():
    m = paper_model("caf-mamba", "dvlog")
    assert m.proj_a.bias is None and m.proj_v.bias is None
    mambas = [b.mamba for b in (m.ufe_a, m.ufe_v, m.cime, m.mme)]
    assert all(isinstance(x, Mamba) and x.bwd is None for x in mambas)            # unidirectional
    assert {x.fwd.A_log.shape for x in mambas} == {(1024, 12)}                      # expand 4, D-Vlog's d_state 12
    assert len({id(x.fwd.A_log) for x in mambas}) == 4                              # nothing shared
    assert m.attention.fuse_in.bias is None and m.attention.fuse_out.bias is None
    assert m.head.drop.p == 0.5 and paper_model("caf-mamba", "lmvd").cime.mamba.fwd.A_log.shape == (1024, 16)


def test_caf_mamba_fuses_three_streams_by_per_frame_softmax_weights_and_two_convolutions():
    torch.manual_seed(0)
    m = factory.from_params("caf-mamba", PARAMS, widths=(25, 136)).eval()
    seen = {}
    m.cime.register_forward_hook(lambda mod, args, out: seen.update(cime_in=args[0], cime_out=out))
    m.ufe_a.register_forward_hook(lambda mod, args, out: seen.update(a=out))
    m.ufe_v.register_forward_hook(lambda mod, args, out: seen.update(v=out))
    m.attention.register_forward_hook(lambda mod, args, out: seen.update(fused=out))
    audio, visual, lengths = torch.randn(2, 12, 25), torch.randn(2, 12, 136), torch.tensor([12, 7])
    with torch.no_grad():
        m(audio, visual, lengths)
    torch.testing.assert_close(seen["cime_in"], seen["a"] + seen["v"])             # zeros + a + v
    streams = [seen["a"], seen["v"], seen["cime_out"]]
    att = m.attention
    for b, n in enumerate(lengths.tolist()):
        for t in range(n):
            means = torch.stack([s[b, t].mean() for s in streams])
            w = torch.softmax(att.proj.weight @ means + att.proj.bias, dim=0)
            x = torch.cat([w[k] * s[b, t] for k, s in enumerate(streams)])
            torch.testing.assert_close(seen["fused"][b, t], att.fuse_out.weight @ (att.fuse_in.weight @ x))
        assert seen["fused"][b, n:].abs().sum() == 0


# --- MDD-Net (rezwanh001/Multimodal-Depression-Detection @b85a8a0) ------------------------------------
def encoder_layer(d: int, ffn: int) -> int:
    """nn.TransformerEncoderLayer(d, heads, ffn): in_proj 3d x d + 3d, out_proj, two FFN linears, two LayerNorms."""
    return linear(d, 3 * d) + linear(d, d) + linear(d, ffn) + linear(ffn, d) + 4 * d


@pytest.mark.parametrize(("dataset", "audio"), [("dvlog", 25), ("lmvd", 128)])
def test_mdd_net_has_the_parameters_of_its_code_at_its_configuration_less_its_unused_heads(dataset, audio):
    d, heads, key = 256, 8, 64
    gsa = conv(audio, 3 * heads * key, 1, False) + conv(heads * key, audio, 1) + 2 * key + (2 * 10 - 1) * key
    inner = int(audio * 0.35)
    bottleneck = (conv(audio, inner, 1, False) + 2 * inner + conv(inner, inner, 3, False) + 2 * inner
                  + conv(inner, 256, 1, False) + 2 * 256 + conv(audio, 256, 1, False) + 2 * 256)
    # HATNet's registered layers only: its stage blocks sit in a Python list, outside parameters()
    hatnet = (conv(136, 16, 3) + 2 * 16 + conv(16, 48, 3)
              + conv(48, 96, 3) + 2 * 96 + conv(96, 240, 3) + 2 * 240 + conv(240, 384, 3) + 2 * 384)
    downsample = conv(256, d, 1) + 2 * d + conv(384, d, 1) + 2 * d
    mha = linear(d, 3 * d) + linear(d, d)
    mutual = (2 * 6 * encoder_layer(d, d) + 6 * linear(d, d) + 3 * linear(2 * d, d) + 2 * mha)
    fusion = 6 * encoder_layer(3 * d, 6 * d)
    by_hand = gsa + bottleneck + hatnet + downsample + mutual + fusion + linear(3 * d, 1)
    ours = n_params(paper_model("mdd-net", dataset))
    assert ours == by_hand == {"dvlog": 35_025_746, "lmvd": 35_283_569}[dataset]
    # what its forward never lets reach the prediction: the acoustic auxiliary head and HATNet's classifier
    unused = (conv(audio, 128, 3) + 2 * 128 + conv(128, 256, 3) + 2 * 256 + linear(256 * 96, 128) + linear(128, 64)
              + linear(64, 1) + linear(384, 1))
    if dataset == "dvlog":                                  # the code runs on D-Vlog only (its width 25 is hard-coded)
        assert ours + unused == 38_289_364


@pytest.fixture(scope="module")
def mdd_demo():
    torch.manual_seed(0)
    return factory.from_params("mdd-net", PARAMS, widths=(25, 136))


def test_mdd_net_keeps_hatnets_stage_blocks_frozen_at_pytorchs_default_initialisation(mdd_demo):
    m = mdd_demo
    trainable = {id(p) for p in m.parameters()}
    stage_tensors = dict(m.hatnet.stages.named_buffers())
    assert stage_tensors and not any(True for _ in m.hatnet.stages.parameters())
    assert all(f"hatnet.stages.{k}" in m.state_dict() for k in stage_tensors)          # a checkpoint restores them
    assert [len(s) for s in m.hatnet.stages] == [1, 1, 1, 1]                             # demo depths; last: one block
    assert [len(s) for s in paper_model("mdd-net", "dvlog").hatnet.stages] == [2, 2, 6, 1]
    before = {k: v.clone() for k, v in stage_tensors.items()}
    opt = torch.optim.Adam(m.parameters(), lr=0.1)
    audio, visual, lengths = torch.randn(3, 24, 25), torch.randn(3, 24, 136), torch.tensor([24, 17, 9])
    m.train()(audio, visual, lengths).sum().backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in m.hatnet.stages.named_buffers())
    assert trainable.isdisjoint(id(b) for b in m.hatnet.stages.buffers())
    # PyTorch's default GroupNorm affine (ones, zeros): the model's Kaiming pass never reached the blocks
    block = m.hatnet.stages[0][0]
    assert torch.equal(block.attn.norm.weight, torch.ones_like(block.attn.norm.weight))
    bound = 1 / math.sqrt(block.attn.qkv.in_features)                                   # default Linear init
    assert block.attn.qkv.weight.abs().max() <= bound and block.attn.qkv.bias.abs().max() <= bound


def test_mdd_net_initialises_as_depdet_and_clones_each_encoders_layers():
    m = paper_model("mdd-net", "dvlog")
    layers = m.fusion
    assert all(torch.equal(layers[0].self_attn.in_proj_weight, x.self_attn.in_proj_weight) for x in layers[1:])
    assert not torch.equal(layers[0].linear1.weight, layers[1].linear1.weight)           # re-initialised one by one
    for lin in (m.head.fc, m.a_down, layers[0].linear1, m.mutual.qf, m.gsa.to_qkv):
        assert lin.weight.abs().max() <= math.sqrt(6 / lin.in_features)                 # Kaiming uniform, ReLU gain
        assert lin.bias is None or lin.bias.abs().sum() == 0
    assert m.head.drop.p == 0.35


def test_mdd_net_reuses_its_v_to_a_attention_for_the_joint_pair(mdd_demo):
    calls = []
    hooks = [mod.register_forward_hook(lambda mod, args, out, name=name: calls.append(name))
             for name, mod in (("av", mdd_demo.mutual.cross_av), ("va", mdd_demo.mutual.cross_va))]
    with torch.no_grad():
        mdd_demo.eval()(torch.randn(2, 20, 25), torch.randn(2, 20, 136), torch.tensor([20, 13]))
    for h in hooks:
        h.remove()
    assert calls == ["av", "va", "va"]


def test_mdd_net_global_self_attention_is_what_its_docstring_says(mdd_demo):
    """The GSA as asym.models.baselines.mdd_net describes it, frame by frame and head by head in
    plain loops, on one unpadded vlog: per head, content_t = sum_d (sum_s softmax_s(k)_ds v_s) q_dt;
    the relative term v_t (q_t . sum of rel_r over offsets r with t + r inside the vlog), through
    the BatchNorm of the key dim (running statistics, set at random here); the two summed, heads
    side by side, through the biased output map."""
    gsa = copy.deepcopy(mdd_demo.gsa).eval()
    torch.manual_seed(2)
    with torch.no_grad():
        for name in ("running_mean", "weight", "bias"):
            getattr(gsa.norm, name).copy_(torch.randn_like(getattr(gsa.norm, name)))
        gsa.norm.running_var.copy_(torch.rand_like(gsa.norm.running_var) + 0.5)
    T, heads, c, reach = 9, gsa.heads, gsa.key_dim, gsa.reach
    x = torch.randn(1, T, 25)
    with torch.no_grad():
        ours = gsa(x, length_mask(torch.tensor([T]), T))[0]
        w = gsa.to_qkv.weight
        hc = heads * c

        def proj(which: int, head: int, t: int) -> torch.Tensor:      # q (0), k (1) or v (2) of a head at frame t
            rows = w[which * hc + head * c: which * hc + (head + 1) * c]
            return rows @ x[0, t]
        bn = gsa.norm
        expected = torch.zeros(T, x.shape[-1])
        for t in range(T):
            heads_out = []
            for h in range(heads):
                q = [proj(0, h, s) for s in range(T)]
                k = [proj(1, h, s) for s in range(T)]
                v = [proj(2, h, s) for s in range(T)]
                content = torch.zeros(c)
                for e in range(c):
                    for d in range(c):
                        norm = sum(math.exp(float(k[s][d])) for s in range(T))
                        context = sum(math.exp(float(k[s][d])) / norm * float(v[s][e]) for s in range(T))
                        content[e] += context * float(q[t][d])
                gate = sum(float(q[t] @ gsa.rel_positions[r + reach]) for r in range(-reach, reach + 1)
                           if 0 <= t + r < T)
                rel = torch.tensor([(float(v[t][e]) * gate - float(bn.running_mean[e]))
                                    / math.sqrt(float(bn.running_var[e]) + bn.eps) * float(bn.weight[e])
                                    + float(bn.bias[e]) for e in range(c)])
                heads_out.append(content + rel)
            expected[t] = gsa.to_out.weight @ torch.cat(heads_out) + gsa.to_out.bias
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_mdd_net_streams_are_downsampled_alike_or_refused():
    m = factory.from_params("mdd-net", PARAMS, widths=(25, 136))
    seen = {}
    m.a_bn.register_forward_hook(lambda mod, args, out: seen.update(a=args[1]))
    m.v_bn.register_forward_hook(lambda mod, args, out: seen.update(v=args[1]))
    with torch.no_grad():
        m.eval()(torch.randn(3, 30, 25), torch.randn(3, 30, 136), torch.tensor([30, 9, 4]))
    assert torch.equal(seen["a"], seen["v"]) and seen["a"].sum(1).tolist() == [8, 3, 1]      # ceil(n / 4)
    from asym.errors import ConfigError

    with pytest.raises(ConfigError, match="downsample as the acoustic bottleneck"):
        factory.from_params("mdd-net", PARAMS, widths=(25, 136), bottleneck_stride=8)


# --- DepMamba (Jiaxin-Ye/DepMamba @6e96fd2) ----------------------------------------------------------------
def test_depmamba_backward_dt_proj_keeps_pytorchs_default_initialisation():
    m = paper_model("depmamba", "dvlog")
    for blk, width in ((m.ssm_a[0], 256), (m.ssm_v[0], 256), (m.en_ssm, 512)):
        mamba = blk.block
        rank = math.ceil(width / 16)
        fwd_dt, bwd_dt = F.softplus(mamba.fwd.dt_proj.bias), F.softplus(mamba.bwd.dt_proj.bias)
        assert fwd_dt.min() >= 1e-3 * (1 - 1e-4) and fwd_dt.max() <= 0.1 * (1 + 1e-4)   # mamba-ssm's dt init
        bound = rank ** -0.5                                                               # nn.Linear's default
        assert mamba.bwd.dt_proj.bias.abs().max() <= bound and mamba.bwd.dt_proj.weight.abs().max() <= bound
        lo, hi = F.softplus(torch.tensor(-bound)), F.softplus(torch.tensor(bound))
        assert lo <= bwd_dt.min() and bwd_dt.max() <= hi and bwd_dt.min() > 0.5          # 0.58-0.83 at 256
        assert bwd_dt.std() > 0.02 and mamba.bwd.dt_proj.bias.mean().abs() < 0.1 * bound # spread uniformly
    assert (round(float(F.softplus(torch.tensor(-0.25))), 2), round(float(F.softplus(torch.tensor(0.25))), 2)) == (0.58, 0.83)
