"""Bring a dataset release into data/raw/<name>: generate the demo, copy a local folder, or
verify and unpack a local or downloaded archive.

Downloads go through pooch (hash check, progress bar). Archive members with absolute paths,
`..` components or links are refused before anything is extracted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pooch

from asym.config import DatasetConfig, SynthConfig
from asym.data import formats
from asym.errors import ConfigError, DataError
from asym.io import atomic_dir

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_member(archive: Path, name: str) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or (len(name) > 1 and name[1] == ":"):
        raise DataError(archive, f"refusing unsafe archive member {name!r} (absolute or `..` path)")


def _check_zip_type(archive: Path, info: zipfile.ZipInfo) -> None:
    """Zip entries made on Unix carry their file type in the high bits of `external_attr`; a
    symlink would be unpacked as a file holding its target, so links and devices are refused."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise DataError(archive, f"refusing archive member {info.filename!r}: links and devices are not allowed")


def safe_extract(archive: Path, dest: Path) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(archive, info.filename)
                    _check_zip_type(archive, info)
                zf.extractall(dest)
        except zipfile.BadZipFile as exc:
            raise DataError(archive, f"corrupt or truncated archive: {exc}") from None
        return
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise DataError(archive, f"unknown archive type; expected one of {ARCHIVE_SUFFIXES}")
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(archive, m.name)
                if m.issym() or m.islnk() or m.isdev():
                    raise DataError(archive, f"refusing archive member {m.name!r}: links and devices are not allowed")
            tf.extractall(dest, members=members, filter="data")
    except tarfile.TarError as exc:
        raise DataError(archive, f"corrupt or truncated archive: {exc}") from None


def _download(url: str, sha256: str | None, cache: Path) -> Path:
    if not sha256:
        raise DataError(None, f"source {url} is a URL but no sha256 is given in params.yaml")
    fname = PurePosixPath(url.split("?")[0]).name or "download"
    try:
        return Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=fname, path=cache, progressbar=True))
    except ValueError as exc:   # pooch raises ValueError on a hash mismatch
        raise DataError(url, f"download failed its sha256 check: {exc}") from None


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link where possible: a real release is gigabytes and is never modified."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def demo_config(fmt: str, synth: SynthConfig) -> dict[str, Any]:
    """The `synth.<fmt>` block a demo of format `fmt` is written from."""
    block = getattr(synth, fmt, None)
    if block is None:
        raise ConfigError(f"a {formats.get(fmt).title} demo needs its `synth.{fmt}` block in the params file")
    return block.model_dump()


def write_demo(fmt: str, out: Path, cfg: dict[str, Any], seed: int, layout: str | None = None) -> None:
    """A synthetic dataset in format `fmt`'s layout (`layout`: which one, where it has several)."""
    f = formats.get(fmt)
    if layout is not None and layout not in f.demo_layouts:
        raise ConfigError(f"a {f.title} demo has layouts {list(f.demo_layouts)}, not {layout!r}")
    extra = {"layout": layout} if layout is not None and len(f.demo_layouts) > 1 else {}
    f.demo_writer()(out, cfg, seed, **extra)


def fetch_dataset(name: str, ds: DatasetConfig, synth: SynthConfig, out: Path, cache: Path,
                  resolve: Callable[[str], Path] = Path) -> dict[str, Any]:
    """Materialise `out` for dataset `name`; returns provenance for the dataset card. A local
    source path is resolved by `resolve` (relative to the params file)."""
    source, fmt = ds.source, formats.get(ds.format)
    if source == "demo":
        write_demo(ds.format, out, demo_config(ds.format, synth), synth.seed + fmt.demo_seed)
        return {"source": "demo", "synthetic": True}
    if fmt.manifest and not source.startswith(("http://", "https://")):
        manifest = resolve(source)
        if not manifest.exists():
            raise DataError(manifest, "dataset source not found")
        with atomic_dir(out) as tmp:   # the manifest and the files it names, hard-linked where possible
            fmt.reader().copy_source(manifest, tmp, _link_or_copy)
        return {"source": str(manifest), "synthetic": False}
    if source.startswith(("http://", "https://")):
        archive = _download(source, ds.sha256, cache)
    else:
        archive = resolve(source)
        if not archive.exists():
            raise DataError(archive, "dataset source not found")
        if archive.is_dir():
            with atomic_dir(out) as tmp:
                shutil.copytree(archive, tmp, dirs_exist_ok=True, copy_function=_link_or_copy)
            return {"source": str(archive), "synthetic": False}
        if ds.sha256 and sha256_of(archive) != ds.sha256:
            raise DataError(archive, "sha256 does not match params.yaml")
    with atomic_dir(out) as tmp:
        safe_extract(archive, tmp)
    return {"source": source, "synthetic": False, **({"sha256": ds.sha256} if ds.sha256 else {})}
