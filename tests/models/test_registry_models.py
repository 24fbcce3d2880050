"""Every registered model: builds from params.yaml, runs forward and backward, gives a
gradient to every parameter it uses, does not depend on its batch, and can overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asym.config import load_params
from asym.data.dvlog import read_dvlog
from asym.data.synthetic import write_dvlog
from asym.models import registry

PARAMS = load_params()
NAMES = registry.names()


def build(name: str, a_dim: int = 25, v_dim: int = 136):
    torch.manual_seed(0)
    return registry.build(name, a_dim, v_dim, params=PARAMS)


def batch(b: int = 4, t: int = 30, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([t] + [int(x) for x in torch.randint(5, t, (b - 1,), generator=g)])
    return torch.randn(b, t, 25, generator=g), torch.randn(b, t, 136, generator=g), lengths


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_gradients(name):
    model = build(name).train()
    audio, visual, lengths = batch()
    logits = model(audio, visual, lengths)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    logits.sum().backward()
    unused = {"asym-audio-only": "visual", "asym-visual-only": "audio"}
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname
        assert unused.get(name, "@") not in pname


@pytest.mark.parametrize("name", NAMES)
def test_logits_do_not_depend_on_the_rest_of_the_batch(name):
    model = build(name).eval()
    audio, visual, lengths = batch(b=3, t=40, seed=1)
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
    write_dvlog(out, {**PARAMS.raw["synth"]["dvlog"], "n_samples": 16, "seconds": [14, 24]}, seed=5)
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


@pytest.mark.parametrize("name", NAMES)
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
    assert all(n_params(build(v)) < n_params(full) for v in registry.names("ablation") if v not in ("asym-transformer",))
    uni = build("asym-unidirectional")
    assert all(b.block.bwd is None for b in uni.mem)
    assert all(isinstance(b.block, torch.nn.TransformerEncoderLayer) for b in build("asym-transformer").mem)


def test_depmamba_streams_share_their_state_matrices():
    m = build("depmamba")
    for a, v in zip(m.ssm_a, m.ssm_v, strict=True):
        assert a.block.fwd.A_log is v.block.fwd.A_log and a.block.bwd.A_log is v.block.bwd.A_log


def test_registry_rejects_unknown_names_and_keys():
    from asym.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model"):
        registry.build("nope", 25, 136, params=PARAMS)
    with pytest.raises(ConfigError, match="does not take"):
        registry.build("asym", 25, 136, params=PARAMS, bogus=1)
