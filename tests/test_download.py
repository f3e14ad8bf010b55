"""Tests for cxrlib.download against a local HTTP server on 127.0.0.1 (no internet)."""
from __future__ import annotations

import hashlib
import random
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cxrlib import download as dl
from cxrlib.errors import ConfigError, DataError

CHUNK = 256  # small chunks so an interrupted transfer leaves a non-empty .part


# --------------------------------------------------------------------------- fixtures


def _blob(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A stored (uncompressed) zip holding ``entries``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def cohen_entries() -> dict[str, bytes]:
    return {
        "covid-chestxray-dataset-master/metadata.csv": b"patientid,filename\n1,x.png\n",
        "covid-chestxray-dataset-master/images/x.png": _blob(20_000, 1),
        "covid-chestxray-dataset-master/README.md": b"readme\n",
    }


def pneumonia_entries(top: str = "") -> dict[str, bytes]:
    return {
        f"{top}chest_xray/train/NORMAL/IM-0001-0001.jpeg": _blob(12_000, 2),
        f"{top}chest_xray/test/PNEUMONIA/person1_virus_6.jpeg": _blob(8_000, 3),
        "__MACOSX/chest_xray/train/NORMAL/._IM-0001-0001.jpeg": b"\0\5\26\7junk",
    }


@pytest.fixture()
def cohen_zip(tmp_path: Path) -> Path:
    return make_zip(tmp_path / "cohen.zip", cohen_entries())


@pytest.fixture()
def pneumonia_zip(tmp_path: Path) -> Path:
    return make_zip(tmp_path / "ChestXRay2017.zip", pneumonia_entries())


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` by path; knobs make it fail the ways real servers do."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.drop_after: int | None = None  # send this many body bytes, then hang up (once)
        self.status: int | None = None  # answer every request with this error status
        self.ignore_range = False  # answer 200 with the whole file even if Range is sent
        self.stall_after: int | None = None  # send this many body bytes, then go silent
        self.release = threading.Event()  # ends a stall (set when the server stops)
        self.requests: list[dict[str, str | None]] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class RangeHandler(BaseHTTPRequestHandler):
    """GET with ``Range: bytes=N-`` support (206 + Content-Range)."""

    server: FileServer

    def log_message(self, *args: object) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        data = srv.files.get(self.path.lstrip("/"))
        if srv.status is not None or data is None:
            self.send_error(srv.status or 404)
            return
        start = self._range_start()
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            self.send_response(200)
            start = 0
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        body = data[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop_after is not None:
            body, srv.drop_after = body[:srv.drop_after], None
            self.close_connection = True
        if srv.stall_after is not None:
            self.wfile.write(body[:srv.stall_after])
            self.wfile.flush()
            srv.release.wait(timeout=10)
            return
        self.wfile.write(body)
        self.wfile.flush()

    def _range_start(self) -> int | None:
        value = self.headers.get("Range")
        if self.server.ignore_range or not value or not value.startswith("bytes="):
            return None
        first = value[len("bytes="):].split("-")[0]
        return int(first) if first.isdigit() else None


@pytest.fixture()
def server(request: pytest.FixtureRequest) -> FileServer:
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()

    def stop() -> None:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)

    request.addfinalizer(stop)
    return srv


def get(dataset: str, dest: Path, **kwargs: object) -> Path:
    """``download`` with quiet, small-chunk, short-timeout defaults for tests."""
    kwargs = {"progress": False, "chunk_size": CHUNK, "timeout": 5, **kwargs}
    return dl.download(dataset, dest, **kwargs)  # type: ignore[arg-type,return-value]


def leftovers(dest: Path) -> list[str]:
    """Temporary or half-moved folders left in ``dest``."""
    return sorted(p.name for p in dest.glob(".tmp-*")) + sorted(
        p.name for p in dest.glob(".old-*"))


# --------------------------------------------------------------------------- downloads


def test_datasets_describe_both_sources() -> None:
    assert set(dl.DATASETS) == {"cohen", "pneumonia"}
    cohen, pneu = dl.DATASETS["cohen"], dl.DATASETS["pneumonia"]
    assert cohen.url.endswith("covid-chestxray-dataset/archive/refs/heads/master.zip")
    assert (cohen.folder, cohen.marker) == ("covid-chestxray-dataset", "metadata.csv")
    assert pneu.archive == "ChestXRay2017.zip" and "rscbjbr9sj" in pneu.url
    assert (pneu.folder, pneu.marker) == ("chest-xray-pneumonia", "chest_xray/train")


def test_full_download_installs_cohen_layout(server: FileServer, cohen_zip: Path,
                                             tmp_path: Path) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    dest = tmp_path / "data"
    folder = get("cohen", dest, url=server.url("cohen.zip"))
    assert folder == dest / "covid-chestxray-dataset"
    assert (folder / "metadata.csv").read_bytes().startswith(b"patientid")
    assert (folder / "images" / "x.png").read_bytes() == _blob(20_000, 1)
    archive = dest / ".downloads" / dl.DATASETS["cohen"].archive
    assert archive.read_bytes() == cohen_zip.read_bytes()
    assert not archive.with_name(archive.name + ".part").exists()
    assert [r["range"] for r in server.requests] == [None]
    assert leftovers(dest) == []


@pytest.mark.parametrize("top", ["", "ChestXRay2017/"])
def test_pneumonia_layout_drops_macosx_and_extra_top_folder(
        server: FileServer, tmp_path: Path, top: str) -> None:
    zip_path = make_zip(tmp_path / "p.zip", pneumonia_entries(top))
    server.files["p.zip"] = zip_path.read_bytes()
    dest = tmp_path / "data"
    folder = get("pneumonia", dest, url=server.url("p.zip"))
    assert folder == dest / "chest-xray-pneumonia"
    assert sorted(p.name for p in folder.iterdir()) == ["chest_xray"]
    assert (folder / "chest_xray/train/NORMAL/IM-0001-0001.jpeg").read_bytes() == \
        _blob(12_000, 2)
    assert (folder / "chest_xray/test/PNEUMONIA/person1_virus_6.jpeg").is_file()
    assert not list(dest.rglob("__MACOSX"))
    assert leftovers(dest) == []


def test_resume_after_interrupted_transfer(server: FileServer, cohen_zip: Path,
                                           tmp_path: Path) -> None:
    data = cohen_zip.read_bytes()
    server.files["cohen.zip"] = data
    server.drop_after = len(data) // 2
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="--from PATH"):
        get("cohen", dest, url=server.url("cohen.zip"))
    part = dest / ".downloads" / "covid-chestxray-dataset-master.zip.part"
    kept = part.stat().st_size
    assert 0 < kept <= len(data) // 2
    assert not (dest / "covid-chestxray-dataset").exists()

    folder = get("cohen", dest, url=server.url("cohen.zip"))
    assert server.requests[-1]["range"] == f"bytes={kept}-"
    assert (dest / ".downloads" / "covid-chestxray-dataset-master.zip").read_bytes() == data
    assert (folder / "metadata.csv").is_file()


def test_server_ignoring_range_restarts_cleanly(server: FileServer, cohen_zip: Path,
                                                tmp_path: Path) -> None:
    data = cohen_zip.read_bytes()
    server.files["cohen.zip"] = data
    server.ignore_range = True
    dest = tmp_path / "data"
    part = dest / ".downloads" / "covid-chestxray-dataset-master.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes that are not the start of the file")
    folder = get("cohen", dest, url=server.url("cohen.zip"))
    assert server.requests[-1]["range"] is not None  # we asked to resume ...
    assert (dest / ".downloads" / "covid-chestxray-dataset-master.zip").read_bytes() == data
    assert (folder / "images" / "x.png").is_file()  # ... and got a clean restart


def test_complete_part_answered_416_is_used(server: FileServer, cohen_zip: Path,
                                            tmp_path: Path) -> None:
    data = cohen_zip.read_bytes()
    server.files["cohen.zip"] = data
    dest = tmp_path / "data"
    part = dest / ".downloads" / "covid-chestxray-dataset-master.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    folder = get("cohen", dest, url=server.url("cohen.zip"))
    assert (folder / "metadata.csv").is_file()
    assert server.requests[-1]["range"] == f"bytes={len(data)}-"


def test_checksum_match_and_mismatch(server: FileServer, cohen_zip: Path,
                                     tmp_path: Path) -> None:
    data = cohen_zip.read_bytes()
    server.files["cohen.zip"] = data
    dest = tmp_path / "data"
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        get("cohen", dest, url=server.url("cohen.zip"), sha256=wrong)
    actual = hashlib.sha256(data).hexdigest()
    assert actual in str(err.value) and wrong in str(err.value)
    assert not (dest / "covid-chestxray-dataset").exists()
    assert not (dest / ".downloads" / "covid-chestxray-dataset-master.zip").exists()
    assert leftovers(dest) == []

    folder = get("cohen", dest, url=server.url("cohen.zip"), sha256=actual.upper())
    assert (folder / "metadata.csv").is_file()


def test_malformed_sha256_is_a_config_error(tmp_path: Path, cohen_zip: Path) -> None:
    with pytest.raises(ConfigError, match="sha256"):
        get("cohen", tmp_path / "data", from_path=cohen_zip, sha256="abc")


def test_http_404_names_the_url(server: FileServer, tmp_path: Path) -> None:
    url = server.url("missing.zip")
    with pytest.raises(DataError) as err:
        get("cohen", tmp_path / "data", url=url)
    assert url in str(err.value) and "--from PATH" in str(err.value)
    assert not (tmp_path / "data" / "covid-chestxray-dataset").exists()


def test_http_500_is_a_data_error(server: FileServer, cohen_zip: Path,
                                  tmp_path: Path) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    server.status = 500
    with pytest.raises(DataError, match="500"):
        get("cohen", tmp_path / "data", url=server.url("cohen.zip"))


def test_connection_refused_is_a_data_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cohen.zip"
    with pytest.raises(DataError, match="--from PATH") as err:
        get("cohen", tmp_path / "data", url=url)
    assert url in str(err.value)


def test_read_timeout_keeps_part(server: FileServer, cohen_zip: Path,
                                 tmp_path: Path) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    server.stall_after = 1000
    url = server.url("cohen.zip")
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="--from PATH") as err:
        get("cohen", dest, url=url, timeout=0.3)
    assert url in str(err.value)
    part = dest / ".downloads" / "covid-chestxray-dataset-master.zip.part"
    assert 0 < part.stat().st_size <= 1000  # kept for resuming (whole chunks only)


def test_corrupt_download_is_deleted(server: FileServer, tmp_path: Path) -> None:
    server.files["bad.zip"] = b"this is not a zip file" * 100
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="not a readable zip"):
        get("cohen", dest, url=server.url("bad.zip"))
    assert not (dest / ".downloads" / "covid-chestxray-dataset-master.zip").exists()
    assert not (dest / "covid-chestxray-dataset").exists()
    assert leftovers(dest) == []


# --------------------------------------------------------------------------- local copies


def test_from_path_zip(tmp_path: Path, pneumonia_zip: Path) -> None:
    folder = get("pneumonia", tmp_path / "data", from_path=pneumonia_zip)
    assert (folder / "chest_xray/train/NORMAL/IM-0001-0001.jpeg").is_file()
    assert pneumonia_zip.is_file()  # the user's copy is left alone


def test_from_path_zip_with_bad_checksum_is_kept(tmp_path: Path, cohen_zip: Path) -> None:
    with pytest.raises(DataError, match="does not match"):
        get("cohen", tmp_path / "data", from_path=cohen_zip, sha256="f" * 64)
    assert cohen_zip.is_file()


def _cohen_folder(root: Path) -> Path:
    folder = root / "covid-chestxray-dataset"
    (folder / "images").mkdir(parents=True)
    (folder / "metadata.csv").write_text("patientid,filename\n1,x.png\n")
    (folder / "images" / "x.png").write_bytes(b"png")
    return folder


def test_from_path_folder_is_copied(tmp_path: Path) -> None:
    source = _cohen_folder(tmp_path / "mine")
    folder = get("cohen", tmp_path / "data", from_path=source)
    assert not folder.is_symlink()
    assert (folder / "images" / "x.png").read_bytes() == b"png"
    assert (source / "metadata.csv").is_file()


def test_from_path_parent_folder_is_accepted(tmp_path: Path) -> None:
    _cohen_folder(tmp_path / "mine")
    folder = get("cohen", tmp_path / "data", from_path=tmp_path / "mine")
    assert (folder / "metadata.csv").is_file()


def test_from_path_folder_linked(tmp_path: Path) -> None:
    source = _cohen_folder(tmp_path / "mine")
    folder = get("cohen", tmp_path / "data", from_path=source, link=True)
    assert folder.is_symlink() and folder.resolve() == source.resolve()
    # relinking with force replaces the link, never the linked data
    get("cohen", tmp_path / "data", from_path=source, link=True, force=True)
    assert (source / "images" / "x.png").is_file()


def test_from_path_folder_with_wrong_layout(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    (wrong / "train" / "NORMAL").mkdir(parents=True)
    (wrong / "other").mkdir()
    with pytest.raises(DataError, match="chest_xray/train"):
        get("pneumonia", tmp_path / "data", from_path=wrong)
    assert not (tmp_path / "data" / "chest-xray-pneumonia").exists()


def test_from_path_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        get("cohen", tmp_path / "data", from_path=tmp_path / "nope.zip")


def test_zip_without_marker_is_rejected(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "x.zip", {"top/readme.txt": b"hi"})
    with pytest.raises(DataError, match="metadata.csv"):
        get("cohen", tmp_path / "data", from_path=zip_path)
    assert not (tmp_path / "data" / "covid-chestxray-dataset").exists()
    assert leftovers(tmp_path / "data") == []


# --------------------------------------------------------------------------- install rules


def test_already_installed_is_skipped(server: FileServer, cohen_zip: Path,
                                      tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    dest = tmp_path / "data"
    folder = get("cohen", dest, url=server.url("cohen.zip"))
    (folder / "mine.txt").write_text("user file")
    server.status = 404  # a second download would fail
    with caplog.at_level("INFO", logger="cxrlib.download"):
        assert get("cohen", dest, url=server.url("cohen.zip")) == folder
    assert "already installed" in caplog.text
    assert len(server.requests) == 1
    assert (folder / "mine.txt").is_file()


def test_force_reinstalls_from_kept_archive(server: FileServer, cohen_zip: Path,
                                            tmp_path: Path) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    dest = tmp_path / "data"
    folder = get("cohen", dest, url=server.url("cohen.zip"))
    (folder / "mine.txt").write_text("stale")
    get("cohen", dest, url=server.url("cohen.zip"), force=True)
    assert not (folder / "mine.txt").exists()
    assert (folder / "metadata.csv").is_file()
    assert len(server.requests) == 1  # the archive in .downloads was reused
    assert leftovers(dest) == []


def test_incomplete_folder_in_the_way_needs_force(tmp_path: Path, cohen_zip: Path) -> None:
    dest = tmp_path / "data"
    (dest / "covid-chestxray-dataset" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="force=True"):
        get("cohen", dest, from_path=cohen_zip)
    folder = get("cohen", dest, from_path=cohen_zip, force=True)
    assert (folder / "metadata.csv").is_file()


@pytest.mark.parametrize("evil", ["../evil.txt",
                                  "covid-chestxray-dataset-master/../../evil.txt",
                                  "/tmp/evil.txt"])
def test_path_traversal_entry_is_rejected(tmp_path: Path, evil: str) -> None:
    entries = {**cohen_entries(), evil: b"pwned"}
    zip_path = make_zip(tmp_path / "evil.zip", entries)
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="outside"):
        get("cohen", dest, from_path=zip_path)
    assert not (dest / "covid-chestxray-dataset").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(dest) == []


def test_unknown_dataset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        get("kaggle", tmp_path)
    for name in ("cohen", "pneumonia", "all"):
        assert name in str(err.value)


def test_all_installs_both(server: FileServer, cohen_zip: Path, pneumonia_zip: Path,
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    server.files["p.zip"] = pneumonia_zip.read_bytes()
    for name, file in (("cohen", "cohen.zip"), ("pneumonia", "p.zip")):
        entry = dl.DATASETS[name]
        monkeypatch.setitem(dl.DATASETS, name, dl.Source(
            entry.title, entry.homepage, server.url(file), entry.archive, entry.folder,
            entry.marker, entry.sha256))
    result = get("all", tmp_path / "data")
    assert result == {"cohen": tmp_path / "data" / "covid-chestxray-dataset",
                      "pneumonia": tmp_path / "data" / "chest-xray-pneumonia"}
    with pytest.raises(ConfigError):
        get("all", tmp_path / "data", url=server.url("cohen.zip"))


# --------------------------------------------------------------------------- pinned snapshots

METADATA_2020_06 = (b"patientid,offset,sex,age,finding,survival,intubated,intubation_present,"
                    b"went_icu,in_icu,view,modality,folder,filename\n"
                    b"1,0,M,50,COVID-19,N,,,,,PA,X-ray,images,x.png\n")


def snapshot_zip(tmp_path: Path, commit: str, metadata: bytes = METADATA_2020_06) -> Path:
    """GitHub's zip of a commit: one top folder named after the repository and commit."""
    top = f"covid-chestxray-dataset-{commit}/"
    return make_zip(tmp_path / f"{commit}.zip", {top + "metadata.csv": metadata,
                                                 top + "images/x.png": _blob(5_000, 7)})


@pytest.fixture()
def pinned(server: FileServer, tmp_path: Path, monkeypatch) -> dict:
    """A named snapshot whose checksums are those of a small archive on the local server."""
    from cxrlib import schemas

    commit = "0123456789abcdef0123456789abcdef01234567"
    archive = snapshot_zip(tmp_path, commit)
    snap = schemas.Snapshot(
        name="test-06", date="June 2020", repo="someone/covid-chestxray-dataset",
        commit=commit, schema="2020-06",
        metadata_sha256=hashlib.sha256(METADATA_2020_06).hexdigest(),
        archive_sha256=hashlib.sha256(archive.read_bytes()).hexdigest(), note="test")
    monkeypatch.setitem(schemas.SNAPSHOTS, snap.name, snap)
    monkeypatch.setattr(schemas, "CODE_HOST", server.url("").rstrip("/"))
    server.files[f"{snap.repo}/archive/{commit}.zip"] = archive.read_bytes()
    return {"snapshot": snap, "archive": archive}


def test_a_named_snapshot_is_fetched_at_its_commit_and_verified(
        server: FileServer, pinned: dict, tmp_path: Path, caplog) -> None:
    import json

    from cxrlib import data, schemas

    snap = pinned["snapshot"]
    dest = tmp_path / "data"
    with caplog.at_level("INFO", logger="cxrlib.download"):
        folder = get("cohen", dest, snapshot=snap.name)
    assert [r["path"] for r in server.requests] == [f"/{snap.repo}/archive/{snap.commit}.zip"]
    assert f"checksum of covid-chestxray-dataset-{snap.commit}.zip verified" in caplog.text
    assert "metadata.csv verified against snapshot test-06" in caplog.text
    record = json.loads((folder / schemas.INSTALL_RECORD).read_text())
    assert record == {"snapshot": "test-06", "commit": snap.commit,
                      "url": server.url(f"{snap.repo}/archive/{snap.commit}.zip"),
                      "metadata_sha256": snap.metadata_sha256, "verified": True,
                      "archive_sha256": snap.archive_sha256}
    assert data.cohen_version(dest) == {"snapshot": "test-06", "commit": snap.commit,
                                        "metadata_sha256": snap.metadata_sha256,
                                        "schema": "2020-06"}
    assert leftovers(dest) == []


def test_a_snapshot_whose_metadata_differs_is_not_installed(
        server: FileServer, pinned: dict, tmp_path: Path, monkeypatch) -> None:
    from cxrlib import schemas

    snap = pinned["snapshot"]
    (tmp_path / "other").mkdir()
    changed = METADATA_2020_06 + b"2,0,F,40,SARS,Y,,,,,PA,X-ray,images,y.png\n"
    other = snapshot_zip(tmp_path / "other", snap.commit, changed)
    server.files[f"{snap.repo}/archive/{snap.commit}.zip"] = other.read_bytes()
    monkeypatch.setitem(schemas.SNAPSHOTS, snap.name,
                        schemas.Snapshot(**{**snap.__dict__, "archive_sha256": None}))
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"metadata.csv of the download has sha256 .* not the "
                                        r".* of snapshot test-06.*not installed"):
        get("cohen", dest, snapshot=snap.name)
    assert not (dest / "covid-chestxray-dataset").exists() and leftovers(dest) == []


def test_a_snapshot_without_a_known_commit_asks_for_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"snapshot 2020-06: .*Pass --commit SHA"):
        get("cohen", tmp_path / "data", snapshot="2020-06")
    with pytest.raises(DataError, match=r"unknown snapshot '1999-01'; known: 2020-03, 2020-06"):
        get("cohen", tmp_path / "data", snapshot="1999-01")
    with pytest.raises(ConfigError, match="Cohen collection only"):
        get("pneumonia", tmp_path / "data", snapshot="2020-06")
    with pytest.raises(ConfigError, match="hexadecimal"):
        get("cohen", tmp_path / "data", commit="master; rm")


def test_the_2020_06_snapshot_verifies_a_local_copy(tmp_path: Path) -> None:
    """--from with --snapshot 2020-06: the copy's metadata.csv must be the papers' file."""
    source = tmp_path / "mine" / "covid-chestxray-dataset"
    (source / "images").mkdir(parents=True)
    (source / "metadata.csv").write_bytes(METADATA_2020_06)
    with pytest.raises(DataError, match="not the 933e38b2"):
        get("cohen", tmp_path / "data", from_path=source, snapshot="2020-06")
    assert not (tmp_path / "data" / "covid-chestxray-dataset").exists()


def test_an_installed_copy_of_another_version_is_not_passed_off(
        server: FileServer, pinned: dict, cohen_zip: Path, tmp_path: Path) -> None:
    server.files["cohen.zip"] = cohen_zip.read_bytes()
    dest = tmp_path / "data"
    get("cohen", dest, url=server.url("cohen.zip"))  # today's collection
    with pytest.raises(DataError, match=r"holds snapshot None .*not the 'test-06'.*--force"):
        get("cohen", dest, snapshot="test-06")
    folder = get("cohen", dest, snapshot="test-06", force=True)
    assert (folder / "metadata.csv").read_bytes() == METADATA_2020_06


def test_cli_download_takes_a_snapshot(server: FileServer, pinned: dict, tmp_path: Path,
                                       capsys) -> None:
    from cxrlib import cli

    dest = tmp_path / "data"
    assert cli.main(["data", "download", "--dataset", "cohen", "--snapshot", "test-06",
                     "--dest", str(dest), "--quiet"]) == 0
    assert (dest / "covid-chestxray-dataset" / "metadata.csv").read_bytes() == METADATA_2020_06
    assert cli.main(["data", "download", "--snapshot", "test-06", "--dest", str(dest)]) != 0
    assert "add --dataset cohen" in capsys.readouterr().err
