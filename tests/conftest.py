from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tarfile
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# As many pytest-xdist workers as cores: one thread each for torch's and BLAS's pools (and the jobs
# they start, where a job sets no count of its own), so that no core runs two workers' threads that
# spin waiting for each other. A job or a test that asks for its threads still gets them.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")) >= (os.cpu_count() or 1):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
ORACLE_DIR = ROOT / ".cache" / "oracle"


def _load_from_tar(tar: tarfile.TarFile, member_suffix: str, name: str) -> types.ModuleType:
    member = next(m for m in tar.getmembers() if m.name.endswith(member_suffix))
    source = tar.extractfile(member).read().decode()
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"<{member.name}>", "exec"), module.__dict__)
    return module


@contextlib.contextmanager
def modules_restored(names: list[str]) -> Iterator[None]:
    """On leaving, these `sys.modules` entries are as they were (entries that were absent are
    removed): placeholders for CUDA-only imports never outlive the oracle that needed them."""
    saved = {k: sys.modules.get(k) for k in names}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture(scope="session")
def mamba_ref():
    """mamba-ssm's own `selective_scan_ref`, loaded from its source distribution.

    Its module imports the compiled `selective_scan_cuda` and a Triton layer-norm kernel at
    import time, neither of which can exist without CUDA; the reference function itself calls
    neither. So the module is executed with placeholders for those names (which raise if
    called), and every placeholder is removed again afterwards.
    """
    tars = sorted(ORACLE_DIR.glob("mamba_ssm-*.tar.gz"))
    if not tars:
        pytest.skip("mamba-ssm source distribution not in .cache/oracle (run `make oracle` with network access)")
    def unavailable(*_args, **_kwargs):
        raise RuntimeError("CUDA-only kernel called from the oracle")

    layer_norm = types.ModuleType("mamba_ssm.ops.triton.layer_norm")
    layer_norm._layer_norm_fwd = unavailable
    placeholders = {
        "selective_scan_cuda": types.ModuleType("selective_scan_cuda"),
        "mamba_ssm.ops": types.ModuleType("mamba_ssm.ops"),
        "mamba_ssm.ops.triton": types.ModuleType("mamba_ssm.ops.triton"),
        "mamba_ssm.ops.triton.layer_norm": layer_norm,
    }
    with modules_restored([*placeholders, "mamba_ssm", "mamba_ssm.utils", "mamba_ssm.utils.torch"]), \
            tarfile.open(tars[-1]) as tar:
        pkg, utils = types.ModuleType("mamba_ssm"), types.ModuleType("mamba_ssm.utils")
        sys.modules.update({**placeholders, "mamba_ssm": pkg, "mamba_ssm.utils": utils})
        sys.modules["mamba_ssm.utils.torch"] = _load_from_tar(tar, "mamba_ssm/utils/torch.py", "mamba_ssm.utils.torch")
        module = _load_from_tar(tar, "mamba_ssm/ops/selective_scan_interface.py", "_mamba_ssm_oracle")
    return module.selective_scan_ref


@pytest.fixture(scope="session")
def params():
    from asym.config import load_params

    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def small_synth(params):
    """Demo generator settings shrunk for unit tests (same layouts, fewer and shorter vlogs)."""
    dv = {**params.synth.dvlog.model_dump(), "n_samples": 24, "seconds": [12, 20]}
    lm = {**params.synth.lmvd.model_dump(), "n_samples": 20, "n_subjects": 14, "seconds": [8, 14]}
    return {"dvlog": dv, "lmvd": lm}


def demo_release(tmp_path_factory, name: str, dataset: str, settings: dict, seed: int,
                 layout: str = "authors") -> Path:
    """A demo release of `dataset` (D-Vlog, or LMVD in `layout`) in a fresh session folder."""
    from asym.data.synthetic import write_dvlog, write_lmvd

    out = tmp_path_factory.mktemp(name) / "release"
    if dataset == "dvlog":
        write_dvlog(out, settings, seed=seed)
    else:
        write_lmvd(out, settings, seed=seed, layout=layout)
    return out


@pytest.fixture(scope="session")
def dvlog_dir(tmp_path_factory, small_synth):
    return demo_release(tmp_path_factory, "dvlog", "dvlog", small_synth["dvlog"], seed=1)


@pytest.fixture(scope="session")
def lmvd_dir(tmp_path_factory, small_synth):
    return demo_release(tmp_path_factory, "lmvd", "lmvd", small_synth["lmvd"], seed=2)


@pytest.fixture(scope="session")
def synchrony_demo(tmp_path_factory) -> Path:
    """The `synchrony` demo on D-Vlog, seed 0, with the known-answer models (tests.test_known_answers.
    MODELS) trained, evaluated and reported once: its report, robustness and explanation tests read
    the same runs (mark them `xdist_group("synchrony")` so that one worker trains them)."""
    from tests.test_known_answers import MODELS, demo_project, run_steps

    params = demo_project(tmp_path_factory.mktemp("synchrony"), "synchrony", MODELS)
    run_steps(params, MODELS)
    return params


def params_beside(params_file: Path, name: str, **sections: object) -> Path:
    """A params file beside `params_file` (so the same data, runs and reports) with `sections` replaced."""
    import yaml

    raw = yaml.safe_load(params_file.read_text())
    raw.update(sections)
    out = params_file.with_name(f"params-{name}.yaml")
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first (in their order), then the rest: under pytest-xdist the long ones start
    early rather than end the run on one worker while the other waits. And each `xdist_group`
    named in the node id, as `--dist loadgroup` needs (`group_in_node_id`)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if getattr(config.option, "loadgroup", False):
        for item in items:
            group_in_node_id(item)


def group_in_node_id(item: pytest.Item) -> None:
    """pytest-xdist 3.8 sends the tests of one `xdist_group` to one worker by the `@<group>` its
    worker appends to their node ids, through `item._nodeid`, which pytest 9 no longer reads (it
    keeps the id in `item._id`): every test would be its own unit, and a module's or a session's
    fixture (the SLURM cluster, the DVC clones) would be built again on the other worker. So the
    suffix is appended here, where it is missing, as xdist means it."""
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:              # pytest 8 reads `_nodeid`: xdist's own suffix holds
        return
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})
    if names and not item.nodeid.endswith(f"@{'_'.join(names)}") and hasattr(item, "_id"):
        item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
