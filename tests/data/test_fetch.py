"""Fetch: local folder, local archive, and a URL served by a real HTTP server on loopback."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import tarfile
import threading
import zipfile

import pytest

from asym.data.fetch import fetch_dataset, safe_extract, sha256_of
from asym.errors import DataError


def _archive(src, dest):
    shutil.make_archive(str(dest), "gztar", root_dir=src.parent, base_dir=src.name)
    return dest.with_suffix(".tar.gz")


def test_local_folder_and_archive(dvlog_dir, tmp_path, params):
    synth = params.raw["synth"]
    out = tmp_path / "raw" / "dvlog"
    prov = fetch_dataset("dvlog", {"format": "dvlog", "source": str(dvlog_dir)}, synth, out, tmp_path / "cache")
    assert (out / "dvlog-dataset" / "labels.csv").is_file() and not prov["synthetic"]
    archive = _archive(dvlog_dir / "dvlog-dataset", tmp_path / "dvlog")
    out2 = tmp_path / "raw" / "dvlog2"
    fetch_dataset("dvlog", {"format": "dvlog", "source": str(archive), "sha256": sha256_of(archive)}, synth, out2, tmp_path / "c")
    assert (out2 / "dvlog-dataset" / "labels.csv").read_text() == (dvlog_dir / "dvlog-dataset" / "labels.csv").read_text()
    with pytest.raises(DataError, match="sha256 does not match"):
        fetch_dataset("dvlog", {"format": "dvlog", "source": str(archive), "sha256": "0" * 64}, synth, tmp_path / "x", tmp_path / "c")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_unsafe_archive_members_are_refused(tmp_path, name):
    tar_path = tmp_path / "bad.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        data = b"x"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="unsafe archive member"):
        safe_extract(tar_path, tmp_path / "out")
    zip_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr(name, "x")
    with pytest.raises(DataError, match="unsafe archive member"):
        safe_extract(zip_path, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_members_are_refused(tmp_path):
    tar_path = tmp_path / "link.tar"
    with tarfile.open(tar_path, "w") as tf:
        info = tarfile.TarInfo("data/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="links and devices"):
        safe_extract(tar_path, tmp_path / "out")


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_download_checks_sha256_and_unpacks(http_server, dvlog_dir, tmp_path, params):
    root, base = http_server
    archive = _archive(dvlog_dir / "dvlog-dataset", root / "dvlog")
    good = sha256_of(archive)
    ds = {"format": "dvlog", "source": f"{base}/dvlog.tar.gz", "sha256": good}
    out = tmp_path / "raw" / "dvlog"
    prov = fetch_dataset("dvlog", ds, params.raw["synth"], out, tmp_path / "cache")
    assert prov["source"].startswith("http://127.0.0.1") and (out / "dvlog-dataset" / "labels.csv").is_file()
    with pytest.raises(DataError, match="sha256"):
        fetch_dataset("dvlog", {**ds, "sha256": "f" * 64}, params.raw["synth"], tmp_path / "raw" / "bad", tmp_path / "cache2")
    assert not (tmp_path / "raw" / "bad").exists()
    with pytest.raises(DataError, match="no sha256"):
        fetch_dataset("dvlog", {**ds, "sha256": None}, params.raw["synth"], tmp_path / "raw" / "b2", tmp_path / "cache3")
