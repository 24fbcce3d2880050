"""Fetch: local folder, local archive, and a URL served by a real HTTP server on loopback."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from asym.config import DatasetConfig
from asym.data.fetch import fetch_dataset, safe_extract, sha256_of
from asym.errors import DataError


def dvlog_source(source: str, sha256: str | None = None) -> DatasetConfig:
    return DatasetConfig(format="dvlog", source=source, sha256=sha256, protocol={"demo": "official", "paper": "official"})


def _archive(src, dest):
    shutil.make_archive(str(dest), "gztar", root_dir=src.parent, base_dir=src.name)
    return dest.with_suffix(".tar.gz")


def test_local_folder_and_archive(dvlog_dir, tmp_path, params):
    synth = params.synth
    out = tmp_path / "raw" / "dvlog"
    prov = fetch_dataset("dvlog", dvlog_source(str(dvlog_dir)), synth, out, tmp_path / "cache")
    assert (out / "dvlog-dataset" / "labels.csv").is_file() and not prov["synthetic"]
    archive = _archive(dvlog_dir / "dvlog-dataset", tmp_path / "dvlog")
    out2 = tmp_path / "raw" / "dvlog2"
    fetch_dataset("dvlog", dvlog_source(str(archive), sha256_of(archive)), synth, out2, tmp_path / "c")
    assert (out2 / "dvlog-dataset" / "labels.csv").read_text() == (dvlog_dir / "dvlog-dataset" / "labels.csv").read_text()
    with pytest.raises(DataError, match="sha256 does not match"):
        fetch_dataset("dvlog", dvlog_source(str(archive), "0" * 64), synth, tmp_path / "x", tmp_path / "c")
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
    ds = dvlog_source(f"{base}/dvlog.tar.gz", good)
    out = tmp_path / "raw" / "dvlog"
    prov = fetch_dataset("dvlog", ds, params.synth, out, tmp_path / "cache")
    assert prov["source"].startswith("http://127.0.0.1") and (out / "dvlog-dataset" / "labels.csv").is_file()
    with pytest.raises(DataError, match="sha256"):
        fetch_dataset("dvlog", ds.model_copy(update={"sha256": "f" * 64}), params.synth, tmp_path / "raw" / "bad", tmp_path / "cache2")
    assert not (tmp_path / "raw" / "bad").exists()
    with pytest.raises(DataError, match="no sha256"):
        fetch_dataset("dvlog", ds.model_copy(update={"sha256": None}), params.synth, tmp_path / "raw" / "b2", tmp_path / "cache3")


def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A tar whose first member is harmless and whose second is `member`."""
    tar_path = tmp_path / "bad.tar"
    with tarfile.open(tar_path, "w") as tf:
        ok = tarfile.TarInfo("data/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        tf.addfile(member, io.BytesIO(data) if data else None)
    return tar_path


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.devmajor, info.devminor = 1, 3
    return info


TAR_MEMBERS = {
    "hard_link_inside": _special("data/hard", tarfile.LNKTYPE, "data/ok.txt"),
    "hard_link_outside": _special("data/hard", tarfile.LNKTYPE, "../../etc/passwd"),
    "char_device": _special("data/null", tarfile.CHRTYPE),
    "block_device": _special("data/sda", tarfile.BLKTYPE),
    "fifo": _special("data/pipe", tarfile.FIFOTYPE),
    "relative_symlink_escaping": _special("data/link", tarfile.SYMTYPE, "../../../outside.txt"),
    "relative_symlink_inside": _special("data/link", tarfile.SYMTYPE, "ok.txt"),
}


def _assert_nothing_extracted(tmp_path: Path, dest: Path) -> None:
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", TAR_MEMBERS)
def test_tar_links_and_devices_are_refused(kind, tmp_path, params):
    tar_path = _tar_with(tmp_path, TAR_MEMBERS[kind])
    with pytest.raises(DataError, match="links and devices are not allowed") as err:
        safe_extract(tar_path, tmp_path / "out")
    assert err.value.path == str(tar_path)
    _assert_nothing_extracted(tmp_path, tmp_path / "out")
    out = tmp_path / "raw" / "dvlog"   # through fetch: no output folder, no temporary one
    with pytest.raises(DataError):
        fetch_dataset("dvlog", dvlog_source(str(tar_path)), params.synth, out, tmp_path / "cache")
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []


ZIP_NAMES = ["..\\evil.txt", "data\\..\\..\\evil.txt", "C:\\evil.txt", "C:evil.txt", "c:/evil.txt", "\\evil.txt"]


@pytest.mark.parametrize("name", ZIP_NAMES)
def test_zip_names_with_backslashes_or_drive_letters_are_refused(name, tmp_path):
    zip_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("data/ok.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "x")     # ZipInfo keeps the name exactly as given
    assert zipfile.ZipFile(zip_path).namelist()[1] == name
    with pytest.raises(DataError, match="unsafe archive member") as err:
        safe_extract(zip_path, tmp_path / "out")
    assert err.value.path == str(zip_path)
    _assert_nothing_extracted(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o666, stat.S_IFIFO | 0o644],
                         ids=["symlink", "char_device", "fifo"])
def test_zip_links_and_devices_are_refused(mode, tmp_path):
    zip_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("data/ok.txt", "ok")
        info = zipfile.ZipInfo("data/link")
        info.create_system = 3                      # made on Unix: the file type is in external_attr
        info.external_attr = mode << 16
        zf.writestr(info, "../../outside.txt")
    with pytest.raises(DataError, match="links and devices are not allowed") as err:
        safe_extract(zip_path, tmp_path / "out")
    assert err.value.path == str(zip_path)
    _assert_nothing_extracted(tmp_path, tmp_path / "out")


def test_zip_regular_files_and_folders_are_extracted(tmp_path):
    zip_path = tmp_path / "good.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("data/", "")
        info = zipfile.ZipInfo("data/ok.txt")
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        zf.writestr(info, "ok")
        zf.writestr("data/plain.txt", "plain")      # permissions only, no file type recorded
    safe_extract(zip_path, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "ok.txt").read_text() == "ok"
    assert (tmp_path / "out" / "data" / "plain.txt").read_text() == "plain"


def test_corrupt_zip_is_a_data_error(tmp_path):
    zip_path = tmp_path / "cut.zip"
    zip_path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        safe_extract(zip_path, tmp_path / "out")
