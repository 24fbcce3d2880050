"""Every registered model: builds from params.yaml on both datasets' input widths, runs forward
and backward, gives a gradient to every parameter it uses, does not depend on its batch, and can
overfit. Then what each variant claims to change, and what it claims to keep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asym.config import load_params
from asym.data.dvlog import read_dvlog
from asym.data.formats import input_widths
from asym.data.synthetic import write_dvlog
from asym.models import factory, registry
from asym.models.layers import MaskedBatchNorm1d, length_mask, sinusoidal_positions, zero_padding
from asym.nn.mamba import BiMamba, Mamba
from tests.project import ROOT

PARAMS = load_params(ROOT / "params.yaml")
NAMES = registry.names()
WIDTHS = input_widths()          # dvlog (25, 136), lmvd (128, 136)


def build(name: str, a_dim: int = 25, v_dim: int = 136):
    torch.manual_seed(0)
    return factory.from_params(name, PARAMS, widths=(a_dim, v_dim))


def batch(b: int = 4, t: int = 30, seed: int = 0, a_dim: int = 25, v_dim: int = 136):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([t] + [int(x) for x in torch.randint(5, t, (b - 1,), generator=g)])
    return torch.randn(b, t, a_dim, generator=g), torch.randn(b, t, v_dim, generator=g), lengths


@pytest.mark.parametrize("dataset", WIDTHS)
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_gradients(name, dataset):
    a_dim, v_dim = WIDTHS[dataset]
    model = build(name, a_dim, v_dim).train()
    audio, visual, lengths = batch(a_dim=a_dim, v_dim=v_dim)
    logits = model(audio, visual, lengths)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    logits.sum().backward()
    unused = {"asym-audio-only": "visual", "asym-visual-only": "audio"}
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname
        assert unused.get(name, "@") not in pname


@pytest.mark.parametrize("dataset", WIDTHS)
@pytest.mark.parametrize("name", NAMES)
def test_logits_do_not_depend_on_the_rest_of_the_batch(name, dataset):
    a_dim, v_dim = WIDTHS[dataset]
    model = build(name, a_dim, v_dim).train()
    with torch.no_grad():                      # a few training batches move BatchNorm's running statistics
        for seed in range(3):
            model(*batch(b=4, t=40, seed=10 + seed, a_dim=a_dim, v_dim=v_dim))
    model.eval()
    audio, visual, lengths = batch(b=3, t=40, seed=1, a_dim=a_dim, v_dim=v_dim)
    for i in range(1, 3):                      # garbage in padding must not matter
        audio[i, lengths[i]:] = 1e3
        visual[i, lengths[i]:] = -1e3
    with torch.no_grad():
        together = model(audio, visual, lengths)
        for i in range(3):
            n = int(lengths[i])
            alone = model(audio[i: i + 1, :n], visual[i: i + 1, :n], lengths[i: i + 1])
            torch.testing.assert_close(alone[0], together[i], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def demo16(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit") / "d"
    write_dvlog(out, {**PARAMS.synth.dvlog.model_dump(), "n_samples": 16, "seconds": [14, 24]}, seed=5)
    samples = list(read_dvlog(out))
    a = [s.audio for s in samples]
    v = [s.visual for s in samples]
    a_mu, a_sd = np.concatenate(a).mean(0), np.concatenate(a).std(0) + 1e-6
    v_mu, v_sd = np.concatenate(v).mean(0), np.concatenate(v).std(0) + 1e-6
    t = max(x.shape[0] for x in a)
    audio, visual = torch.zeros(16, t, 25), torch.zeros(16, t, 136)
    for i, s in enumerate(samples):
        audio[i, : s.n_frames] = torch.from_numpy((s.audio - a_mu) / a_sd)
        visual[i, : s.n_frames] = torch.from_numpy((s.visual - v_mu) / v_sd)
    lengths = torch.tensor([s.n_frames for s in samples])
    return audio, visual, lengths, torch.tensor([float(s.label) for s in samples])


# ASYM, DepMamba and two baselines: the forward/backward tests above cover every other entry.
OVERFIT = ["asym", "depmamba", "mean-mlp", "mult"]


@pytest.mark.parametrize("name", OVERFIT)
def test_can_overfit_16_demo_samples(name, demo16):
    audio, visual, lengths, labels = demo16
    model = build(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(audio, visual, lengths), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.eval()
            acc = ((model(audio, visual, lengths) > 0).float() == labels).float().mean().item()
            model.train()
        if acc == 1.0:
            break
    assert acc == 1.0, f"{name} reached only {acc:.2f} training accuracy"


def n_params(model, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def test_ablations_really_remove_their_modules():
    full = build("asym")
    assert n_params(full, "cross_attention") > 0 and n_params(full, "fusion.gate") > 0 and n_params(full, "mem") > 0
    assert n_params(build("asym-no-crossattn"), "cross_attention") == 0
    assert build("asym-no-msgpf").fusion is None
    assert build("asym-no-gate").fusion.gate is None
    assert len(build("asym-no-multiscale").fusion.multiscale.convs) == 1 < len(full.fusion.multiscale.convs)
    assert n_params(build("asym-no-mem"), "mem") == 0
    no_cmim = build("asym-no-cmim")
    assert n_params(no_cmim, "cross_attention") == 0
    assert all(e.cnn is None and len(e.blocks) == 0 for e in no_cmim.encoders.values())
    assert list(build("asym-audio-only").encoders) == ["audio"]
    assert list(build("asym-visual-only").encoders) == ["visual"]
    same_size = ("asym-transformer", "asym-unidirectional", "asym-no-mamba-interaction")
    assert all(n_params(build(v)) < n_params(full) for v in registry.names("ablation") if v not in same_size)
    assert all(isinstance(b.block, torch.nn.TransformerEncoderLayer) for b in build("asym-transformer").mem)


def mamba_blocks(model):
    return [m for m in model.modules() if isinstance(m, Mamba)]


def test_unidirectional_variant_is_forward_only_at_the_full_models_parameter_count():
    uni, full = build("asym-unidirectional"), build("asym")
    assert mamba_blocks(uni) and all(m.bwd is None for m in mamba_blocks(uni))
    assert all(m.bwd is not None for m in mamba_blocks(full))
    assert all(u.fwd.A_log.shape[1] == f.fwd.A_log.shape[1] for u, f in zip(mamba_blocks(uni), mamba_blocks(full),
                                                                          strict=True))   # same d_state
    for row in factory.details(PARAMS):
        if row["model"] == "asym-unidirectional":
            uni_row = row
        if row["model"] == "asym":
            full_row = row
    for key in ("demo/dvlog", "demo/lmvd", "paper/dvlog", "paper/lmvd"):
        assert abs(uni_row[key] / full_row[key] - 1) < 0.01, key


def test_cmim_bimambas_share_their_state_matrices_and_the_no_interaction_variant_does_not():
    full = build("asym")
    audio, visual = full.encoders["audio"].blocks, full.encoders["visual"].blocks
    assert len(audio) == len(visual) > 0
    ids = {id(p) for p in full.parameters()}
    for a, v in zip(audio, visual, strict=True):
        assert a.block.fwd.A_log is v.block.fwd.A_log and a.block.bwd.A_log is v.block.bwd.A_log
        assert id(a.block.fwd.A_log) in ids
        assert a.block.fwd.D is not v.block.fwd.D and a.block.in_proj.weight is not v.block.in_proj.weight
    for a, v in zip(full.mem, full.mem[1:], strict=False):    # MEM's blocks keep their own A
        assert a.block.fwd.A_log is not v.block.fwd.A_log
    apart = build("asym-no-mamba-interaction")
    for a, v in zip(apart.encoders["audio"].blocks, apart.encoders["visual"].blocks, strict=True):
        assert a.block.fwd.A_log is not v.block.fwd.A_log and a.block.bwd.A_log is not v.block.bwd.A_log
    shared = sum(b.block.fwd.A_log.numel() + b.block.bwd.A_log.numel() for b in audio)
    assert n_params(apart) == n_params(full) + shared          # each shared A counted once


def test_shared_state_matrix_learns_from_both_modalities():
    model = build("asym")
    a_blk, v_blk = model.encoders["audio"].blocks[0], model.encoders["visual"].blocks[0]
    x, lengths = torch.randn(2, 10, a_blk.norm.normalized_shape[0]), torch.tensor([10, 6])
    for blk in (a_blk, v_blk):                  # either stream alone moves the one shared A
        model.zero_grad()
        blk(x, length_mask(lengths, 10), lengths).sum().backward()
        assert a_blk.block.fwd.A_log.grad.abs().sum() > 0 and a_blk.block.bwd.A_log.grad.abs().sum() > 0


def test_transformer_variant_adds_sinusoidal_positions_once_before_its_layers():
    model = build("asym-transformer").eval()
    assert all(e.positions for e in model.encoders.values()) and not any(e.positions for e in build("asym").encoders.values())
    seen = {}
    model.encoders["audio"].cnn.register_forward_hook(lambda m, args, out: seen.setdefault("cnn_in", args[0]))
    audio, visual, lengths = batch()
    with torch.no_grad():
        model(torch.zeros_like(audio), visual, lengths)          # the bias-free projection of zeros is zero
    pe = sinusoidal_positions(30, model.encoders["audio"].proj.out_features, torch.device("cpu"))
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(seen["cnn_in"][i, :n], pe[:n])
        assert seen["cnn_in"][i, n:].abs().sum() == 0


def test_depmamba_streams_share_their_state_matrices():
    m = build("depmamba")
    for a, v in zip(m.ssm_a, m.ssm_v, strict=True):
        assert a.block.fwd.A_log is v.block.fwd.A_log and a.block.bwd.A_log is v.block.bwd.A_log
        assert a.block.fwd.D is not v.block.fwd.D and a.block.out_proj.weight is not v.block.out_proj.weight
    assert m.en_ssm.block.fwd.A_log is not m.ssm_a[0].block.fwd.A_log


def test_depmamba_is_built_as_its_public_code_builds_it():
    m = build("depmamba")
    assert m.proj_a.bias is None and m.proj_v.bias is None                       # bias-free 1x1 convolutions
    for cnn in (*m.cnn_a, *m.cnn_v, m.en_cnn):
        assert cnn.conv.bias is None and isinstance(cnn.norm, MaskedBatchNorm1d)
    assert m.head.drop.p == 0.0                                                  # no dropout in the head
    assert all(isinstance(mod.block, BiMamba) for mod in (*m.ssm_a, *m.ssm_v, m.en_ssm))
    # the Mamba layer is x + LayerNorm(mamba(x)), nothing else (no dropout, no post-norm)
    blk = m.en_ssm.train()
    x, lengths = torch.randn(2, 12, blk.norm.normalized_shape[0]), torch.tensor([12, 7])
    x = zero_padding(x, length_mask(lengths, 12))
    torch.testing.assert_close(blk(x, length_mask(lengths, 12), lengths),
                               zero_padding(x + blk.norm(blk.block(x, lengths)), length_mask(lengths, 12)))
    # official parameter count at paper scale on D-Vlog, from its config (d_state 12, widths 256 / 512),
    # less the `a_downsample` Conv1d(256, 256, 16) + BatchNorm(256) that its forward never calls
    paper = PARAMS.at_scale("paper")
    official_total, unused_downsample = 7_714_305, 256 * 256 * 16 + 256 + 2 * 256
    assert n_params(factory.from_params("depmamba", paper, "dvlog", widths=(25, 136))) == official_total - unused_downsample


def test_entries_name_their_recipe_and_spell_their_model_once():
    """A model with a recipe of its own (a peer's published one) names it after itself; a variant
    reads its model's family, module and recipe; every recipe named is in params.yaml."""
    for name in NAMES:
        e = registry.get(name)
        assert e.recipe in PARAMS.data.recipes.demo and e.recipe in PARAMS.data.recipes.paper, name
        if e.kind == registry.PEER_ABLATION_KIND:     # a peer's own ablation: its peer's family, module and recipe
            peer = registry.get(e.recipe)
            assert peer.kind == "baseline" and name.startswith(f"{peer.name}-"), name
            assert (e.family, e.target) == (peer.family, peer.target), name
            continue
        assert e.recipe in ("asym", name), name
        if e.kind == "baseline":
            assert e.family == name.replace("-", "_") == e.target.split(":")[0].rsplit(".", 1)[1], name
        else:
            assert e.family == "asym" and e.target == "asym.models.asym:ASYM" and name.startswith("asym")


def test_asym_refuses_unknown_modalities_with_a_config_error():
    from asym.errors import ConfigError

    with pytest.raises(ConfigError, match="modalities"):
        factory.from_params("asym", PARAMS, widths=(25, 136), modalities=["text"])


def test_registry_rejects_unknown_names_and_keys():
    from asym.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model"):
        factory.from_params("nope", PARAMS, widths=(25, 136))
    with pytest.raises(ConfigError, match=r"model\.demo\.asym: bogus: unknown key \(a typo\?\)"):
        factory.from_params("asym", PARAMS, widths=(25, 136), bogus=1)


@pytest.mark.parametrize("name", registry.names())
def test_each_family_schema_is_its_models_constructor(name):
    """The typed family (the model file's config) holds exactly the arguments the class takes, and
    the class repeats none of its defaults: each default is written once."""
    import inspect

    schema = registry.family(registry.get(name).family)
    signature = inspect.signature(factory.model_class(name).__init__).parameters
    takes = set(signature) - {"self", "audio_dim", "visual_dim"}
    assert set(schema.model_fields) - {"by_dataset"} == takes
    assert [a for a in takes if signature[a].default is not inspect.Parameter.empty] == []


def test_a_registry_entry_with_a_bad_override_is_refused_when_it_is_declared():
    from asym.errors import ConfigError
    from asym.models import register_model
    from asym.models.asym import AsymConfig
    from asym.models.baselines.bilstm import BiLSTMConfig

    full = registry.get("asym")
    with pytest.raises(ConfigError, match="does not have"):
        full.variant("asym-typo", "a typo", use_gat=False)
    with pytest.raises(ConfigError, match="use_gate"):
        full.variant("asym-typo", "a bad value", use_gate="nope")
    with pytest.raises(ConfigError, match="registered twice"):
        full.variant("asym-no-gate", "a second one", use_gate=False)
    with pytest.raises(ConfigError, match="declared with config"):
        register_model("asym-other", BiLSTMConfig, "ASYM", family="asym", description="another schema")
    with pytest.raises(ConfigError, match="ModelConfig"):
        register_model("untyped", dict, "ASYM", description="no typed config")
    assert AsymConfig is registry.family("asym")
    assert not {"asym-typo", "asym-other", "untyped"} & set(registry.names())
