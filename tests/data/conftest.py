from __future__ import annotations

import pytest

from tests.conftest import demo_release


@pytest.fixture(scope="session")
def tiny_synth(small_synth):
    """Four short vlogs per release: enough for a first, a middle and a last sample."""
    return {
        "dvlog": {**small_synth["dvlog"], "n_samples": 4, "seconds": [4, 6]},
        "lmvd": {**small_synth["lmvd"], "n_samples": 4, "n_subjects": 3, "seconds": [4, 6]},
    }


@pytest.fixture(scope="session")
def tiny_dvlog(tmp_path_factory, tiny_synth):
    return demo_release(tmp_path_factory, "tiny_dvlog", "dvlog", tiny_synth["dvlog"], seed=5) / "dvlog-dataset"


@pytest.fixture(scope="session")
def tiny_lmvd(tmp_path_factory, tiny_synth):
    return demo_release(tmp_path_factory, "tiny_lmvd", "lmvd", tiny_synth["lmvd"], seed=6)


@pytest.fixture(scope="session")
def tiny_derived(tmp_path_factory, tiny_synth):
    return demo_release(tmp_path_factory, "tiny_derived", "lmvd", tiny_synth["lmvd"], seed=7, layout="derived")
