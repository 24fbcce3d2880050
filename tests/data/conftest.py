from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_synth(small_synth):
    """Four short vlogs per release: enough for a first, a middle and a last sample."""
    return {
        "dvlog": {**small_synth["dvlog"], "n_samples": 4, "seconds": [4, 6]},
        "lmvd": {**small_synth["lmvd"], "n_samples": 4, "n_subjects": 3, "seconds": [4, 6]},
    }


@pytest.fixture(scope="session")
def tiny_dvlog(tmp_path_factory, tiny_synth):
    from asym.data.synthetic import write_dvlog

    out = tmp_path_factory.mktemp("tiny_dvlog") / "release"
    write_dvlog(out, tiny_synth["dvlog"], seed=5)
    return out / "dvlog-dataset"


@pytest.fixture(scope="session")
def tiny_lmvd(tmp_path_factory, tiny_synth):
    from asym.data.synthetic import write_lmvd

    out = tmp_path_factory.mktemp("tiny_lmvd") / "release"
    write_lmvd(out, tiny_synth["lmvd"], seed=6, layout="authors")
    return out


@pytest.fixture(scope="session")
def tiny_derived(tmp_path_factory, tiny_synth):
    from asym.data.synthetic import write_lmvd

    out = tmp_path_factory.mktemp("tiny_derived") / "release"
    write_lmvd(out, tiny_synth["lmvd"], seed=7, layout="derived")
    return out
