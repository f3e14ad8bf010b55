"""Fetch the two real datasets into the layout ``cxrlib.data`` reads.

- ``cohen``: the COVID-19 image collection of Cohen et al., as GitHub's zip of the
  repository, installed as ``<dest>/covid-chestxray-dataset/`` (``metadata.csv``,
  ``images/``).
- ``pneumonia``: the pediatric chest X-rays of Kermany et al. (Mendeley Data,
  doi:10.17632/rscbjbr9sj.2, ``ChestXRay2017.zip``), installed as
  ``<dest>/chest-xray-pneumonia/chest_xray/{train,test}/{NORMAL,PNEUMONIA}/``.

Downloads stream to ``<dest>/.downloads/<archive>.part`` and resume with an HTTP
``Range`` request; the finished archive is kept in ``<dest>/.downloads/`` (delete it to
fetch a fresh copy). Archives are extracted into a temporary folder inside ``dest`` and
moved into place with ``os.replace``, so the final folder is either complete or absent.
Without network, pass ``from_path`` (``--from PATH`` on the command line): a zip you
downloaded yourself, or a folder already in the original layout.

Pinned versions of the Cohen collection: ``snapshot`` (``--snapshot 2020-06``) names an
entry of ``cxrlib.schemas.SNAPSHOTS`` and ``commit`` (``--commit SHA``) any commit of the
collection's repository; both fetch GitHub's zip of that commit instead of today's
``master``. The zip is verified against the snapshot's archive checksum and the extracted
``metadata.csv`` against its metadata checksum, where those are known; an unverified
check is logged as such, never passed off as verified. Every Cohen install records what it
holds in ``.cxr-snapshot.json`` beside ``metadata.csv`` (snapshot, commit, URL, the
archive's and the metadata file's SHA-256), which ``cxr data summary`` and each run's
``metrics.json`` report.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

import requests
from tqdm import tqdm

from cxrlib import io, schemas
from cxrlib.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DOWNLOADS = ".downloads"
JUNK_DIRS = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and what its installed folder looks like."""

    title: str
    homepage: str
    url: str
    archive: str  # file name of the archive in <dest>/.downloads/
    folder: str  # folder it installs under <dest>
    marker: str  # path inside `folder` that proves the install is complete
    sha256: str | None  # None: no checksum to compare against (see DATASETS)


DATASETS: dict[str, Source] = {
    "cohen": Source(
        title="COVID-19 image data collection (Cohen et al.)",
        homepage="https://github.com/ieee8023/covid-chestxray-dataset",
        url="https://github.com/ieee8023/covid-chestxray-dataset/archive/refs/heads/master.zip",
        archive="covid-chestxray-dataset-master.zip",
        folder="covid-chestxray-dataset",
        marker="metadata.csv",
        # None: GitHub builds this zip from the tip of `master`, so its bytes change with
        # every commit and there is no published checksum.
        sha256=None,
    ),
    "pneumonia": Source(
        title="Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for "
              "Classification (Kermany et al., Mendeley Data, doi:10.17632/rscbjbr9sj.2)",
        homepage="https://data.mendeley.com/datasets/rscbjbr9sj/2",
        url="https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
            "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded",
        archive="ChestXRay2017.zip",
        folder="chest-xray-pneumonia",
        marker="chest_xray/train",
        # None: no checksum for ChestXRay2017.zip was recorded with this project (none
        # was available to check offline); pass sha256=... to verify your copy.
        sha256=None,
    ),
}


# --------------------------------------------------------------------------- public API


def download(dataset: str, dest: str | Path, *, from_path: str | Path | None = None,
             url: str | None = None, sha256: str | None = None, force: bool = False,
             link: bool = False, progress: bool = True, chunk_size: int = 1 << 20,
             timeout: float = 60, snapshot: str | None = None,
             commit: str | None = None) -> Path | dict[str, Path]:
    """Install ``dataset`` (``cohen``, ``pneumonia`` or ``all``) under ``dest``.

    Returns the installed folder (a ``{name: folder}`` dict for ``all``). An installed
    dataset (marker present) is skipped unless ``force``. ``from_path`` is a local zip or
    a folder in the original layout (copied, or symlinked with ``link``); ``url`` and
    ``sha256`` override the entries of ``DATASETS``. ``snapshot`` and ``commit`` pin the
    Cohen collection to a named snapshot or a commit (module docstring).
    """
    if dataset == "all":
        if any(v is not None for v in (from_path, url, sha256, snapshot, commit)):
            raise ConfigError("dataset='all' takes no from_path/url/sha256/snapshot/commit: "
                              "give one dataset at a time for those")
        return download_all(dest, force=force, progress=progress,
                            chunk_size=chunk_size, timeout=timeout)
    source = _source(dataset)
    pin = _pin(dataset, snapshot, commit, from_path is not None)
    source = _pinned(source, pin)
    dest = Path(dest).expanduser()
    final = dest / source.folder
    if is_installed(final, source) and not force:
        _check_installed_pin(final, pin)
        log.info("%s is already installed at %s; skipping (force=True reinstalls)",
                 dataset, final)
        return final
    _check_target(final, force)
    expected = _check_sha256(sha256 or source.sha256)
    dest.mkdir(parents=True, exist_ok=True)
    record = _cohen_record(pin) if dataset == "cohen" else None
    if from_path is not None:
        _install_local(Path(from_path).expanduser(), source, final, expected=expected,
                       link=link, progress=progress, record=record)
        return final
    archive_url = url or source.url
    archive = fetch(archive_url, dest / DOWNLOADS / source.archive,
                    progress=progress, chunk_size=chunk_size, timeout=timeout)
    _verify(archive, expected, delete=True)
    _install_archive(archive, source, final, delete_bad=True, progress=progress,
                     record=_with(record, url=archive_url, archive=archive))
    return final


def _install_local(local: Path, source: Source, final: Path, *, expected: str | None,
                   link: bool, progress: bool, record: dict | None) -> None:
    """Install from ``--from``: a folder in the original layout (copied, or symlinked with
    ``link``) or an archive (checked against ``expected``, never deleted)."""
    if local.is_dir():
        _install_folder(local, source, final, link=link,
                        record=None if link else _with(record, url=str(local)))
        return
    if not local.is_file():
        raise DataError(f"--from {local}: no such file or folder")
    if link:
        log.warning("link=True only applies to folders; extracting %s", local)
    _verify(local, expected, delete=False)
    _install_archive(local, source, final, delete_bad=False, progress=progress,
                     record=_with(record, url=str(local), archive=local))


def _pinned(source: Source, pin: dict | None) -> Source:
    """``source`` with the URL, archive name and checksum a ``pin`` fixes (unchanged without one)."""
    if pin is None:
        return source
    return replace(source, url=pin["url"] or source.url,
                   archive=f"{source.folder}-{pin['commit'] or pin['snapshot']}.zip",
                   sha256=pin["archive_sha256"])


def _cohen_record(pin: dict | None) -> dict:
    """What the Cohen install record starts with: the pin asked for (each value None
    without one)."""
    return {"snapshot": pin and pin["snapshot"], "commit": pin and pin["commit"],
            "metadata_sha256_expected": pin and pin["metadata_sha256"]}


def _pin(dataset: str, snapshot: str | None, commit: str | None,
         local: bool) -> dict | None:
    """What a ``snapshot``/``commit`` request fixes: name, commit, URL and checksums."""
    if snapshot is None and commit is None:
        return None
    if dataset != "cohen":
        raise ConfigError(f"snapshot/commit pin the Cohen collection only, not {dataset!r}")
    if commit is not None and not (7 <= len(commit) <= 40
                                   and all(c in "0123456789abcdef" for c in commit.lower())):
        raise ConfigError(f"commit must be a hexadecimal git commit id, got {commit!r}")
    named = schemas.snapshot(snapshot) if snapshot is not None else None
    chosen = commit or (named.commit if named else None)
    if chosen is None and not local:
        raise ConfigError(
            f"snapshot {snapshot}: {named.note}. Pass --commit SHA (a commit of "
            f"{named.repo} from {named.date}) or --from PATH")
    url = named.url(chosen) if named else (
        f"{schemas.CODE_HOST}/{schemas.COHEN_REPO}/archive/{chosen}.zip")
    return {"snapshot": snapshot, "commit": chosen, "url": url,
            "archive_sha256": named.archive_sha256 if named and chosen == named.commit else None,
            "metadata_sha256": named.metadata_sha256 if named else None}


def _with(record: dict | None, **more: object) -> dict | None:
    return None if record is None else {**record, **more}


def _check_installed_pin(final: Path, pin: dict | None) -> None:
    """Refuse to pass off an installed copy of another version as the one asked for."""
    if pin is None:
        return
    try:
        held = json.loads((final / schemas.INSTALL_RECORD).read_text())
    except (OSError, ValueError):
        held = {}
    if (held.get("snapshot"), held.get("commit")) != (pin["snapshot"], pin["commit"]):
        raise DataError(f"{final} holds snapshot {held.get('snapshot')!r} (commit "
                        f"{held.get('commit')!r}), not the {pin['snapshot'] or pin['commit']!r} "
                        "asked for; pass force=True (--force) to replace it")


def download_all(dest: str | Path, **kwargs: object) -> dict[str, Path]:
    """Install every dataset of ``DATASETS`` under ``dest``; ``{name: folder}``."""
    return {name: download(name, dest, **kwargs) for name in DATASETS}  # type: ignore[misc]


def is_installed(folder: str | Path, source: Source) -> bool:
    """True when ``folder`` holds ``source``'s marker (installs are atomic)."""
    return (Path(folder) / source.marker).exists()


def fetch(url: str, archive: str | Path, *, progress: bool = True,
          chunk_size: int = 1 << 20, timeout: float = 60) -> Path:
    """Download ``url`` to ``archive``, resuming ``<archive>.part`` if present.

    An archive that already exists is reused. Network failures raise ``DataError`` and
    keep the ``.part`` file so the next call resumes.
    """
    archive = Path(archive)
    if archive.is_file():
        log.info("using %s, downloaded earlier (delete it to fetch again)", archive)
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    try:
        _stream(url, part, progress=progress, chunk_size=chunk_size, timeout=timeout)
    except requests.RequestException as exc:
        raise DataError(
            f"could not download {url}: {exc}. The partial file {part} is kept: run again "
            f"to resume, or fetch the archive yourself and pass it with --from PATH"
        ) from exc
    os.replace(part, archive)
    log.info("downloaded %s (%d bytes)", archive, archive.stat().st_size)
    return archive


# --------------------------------------------------------------------------- download


def _stream(url: str, part: Path, *, progress: bool, chunk_size: int,
            timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (or restart it); raise if it is short."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte counts must match the file
    if offset:
        headers["Range"] = f"bytes={offset}-"
        log.info("resuming %s at byte %d", url, offset)
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
        if resp.status_code == 416 and offset:
            has_range = bool(resp.headers.get("Content-Range"))
            if has_range and _content_range(resp)[1] == offset:
                return  # the .part is already whole
            log.warning("server refused to resume %s; starting again", url)
            part.unlink()
            return _stream(url, part, progress=progress, chunk_size=chunk_size,
                           timeout=timeout)
        resp.raise_for_status()
        start, total = _start_and_total(resp)
        if start not in (0, offset):
            raise DataError(f"{url}: asked for bytes from {offset}, got from {start}")
        if offset and start == 0:
            log.info("server does not resume %s; downloading from the start", url)
        mode = "ab" if start else "wb"
        with open(part, mode) as fh, tqdm(total=total, initial=start, unit="B",
                                          unit_scale=True, unit_divisor=1024,
                                          desc=part.name[:-len(".part")],
                                          disable=not progress) as bar:
            for chunk in resp.iter_content(chunk_size):
                fh.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(f"{url}: got {size} of {total} bytes; {part} is kept, run again "
                        f"to resume")


def _start_and_total(resp: requests.Response) -> tuple[int, int | None]:
    """First byte and full size of the file from a 200 or 206 response."""
    if resp.status_code == 206:
        return _content_range(resp)
    length = resp.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _content_range(resp: requests.Response) -> tuple[int, int | None]:
    """Parse ``Content-Range: bytes a-b/total`` (or ``bytes */total``) to (a, total)."""
    value = resp.headers.get("Content-Range", "")
    unit, _, spec = value.partition(" ")
    span, _, total = spec.partition("/")
    first = span.split("-")[0]
    if unit != "bytes" or not (first.isdigit() or first == "*"):
        raise DataError(f"{resp.url}: unexpected Content-Range {value!r}")
    return (int(first) if first.isdigit() else 0), (int(total) if total.isdigit() else None)


def _check_sha256(value: str | None) -> str | None:
    """Lower-cased hex digest, or ``ConfigError`` if it is not 64 hex digits."""
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"sha256 must be 64 hex digits, got {value!r}")
    return value


def _verify(archive: Path, expected: str | None, *, delete: bool) -> None:
    """Compare the archive's SHA-256 to ``expected``; on mismatch (delete and) raise."""
    if expected is None:
        log.info("no checksum known for %s; not verified", archive.name)
        return
    actual = io.sha256_file(archive)
    if actual == expected:
        log.info("checksum of %s verified", archive.name)
        return
    if delete:
        archive.unlink()
    raise DataError(f"{archive}: sha256 {actual} does not match the expected {expected}"
                    + ("; the file was deleted, run again to download it anew" if delete
                       else ""))


# --------------------------------------------------------------------------- install


def _source(dataset: str) -> Source:
    """The ``DATASETS`` entry for ``dataset`` or a ``ConfigError`` naming the choices."""
    try:
        return DATASETS[dataset]
    except KeyError:
        choices = ", ".join([*DATASETS, "all"])
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {choices}") from None


def _check_target(final: Path, force: bool) -> None:
    """Refuse to overwrite something at ``final`` that is not our install, unless forced."""
    if (final.exists() or final.is_symlink()) and not force:
        raise DataError(f"{final} exists but is not a complete install; remove it or "
                        f"pass force=True to replace it")


def _install_archive(archive: Path, source: Source, final: Path, *, delete_bad: bool,
                     progress: bool, record: dict | None = None) -> None:
    """Extract ``archive`` next to ``final``, normalise the layout and move it in place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{source.folder}-", dir=final.parent))
    try:
        _extract(archive, tmp, delete_bad=delete_bad, progress=progress)
        root = _find_root(tmp, source.marker)
        if root is None:
            raise DataError(f"{archive}: no {source.marker} inside; expected a copy of "
                            f"{source.archive} ({source.homepage})")
        _record(root, source, record)
        _place(root, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("installed %s at %s", source.title, final)


def _install_folder(folder: Path, source: Source, final: Path, *, link: bool,
                    record: dict | None = None) -> None:
    """Copy (or symlink) a folder in the original layout to ``final``."""
    root = _find_root(folder, source.marker)
    if root is None:
        raise DataError(f"{folder}: no {source.marker} inside; expected a folder holding "
                        f"{source.marker} (the unpacked {source.archive})")
    if not final.is_symlink() and root.resolve().is_relative_to(final.resolve()):
        raise DataError(f"{folder} is the install folder {final} itself; nothing to copy")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{source.folder}-", dir=final.parent))
    try:
        staged = tmp / source.folder
        if link:
            staged.symlink_to(root.resolve(), target_is_directory=True)
        else:
            shutil.copytree(root, staged, ignore=shutil.ignore_patterns(*JUNK_DIRS))
            _record(staged, source, record)
        _place(staged, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s %s at %s", "linked" if link else "copied", root, final)


def _record(root: Path, source: Source, record: dict | None) -> None:
    """Check the metadata file against the pin's checksum, then write the install record
    (``schemas.INSTALL_RECORD``) beside it; a mismatch stops the install."""
    if record is None:
        return
    actual = io.sha256_file(root / source.marker)
    expected = record.pop("metadata_sha256_expected", None)
    if expected is not None and actual != expected:
        raise DataError(f"{source.marker} of the download has sha256 {actual}, not the "
                        f"{expected} of snapshot {record.get('snapshot')}: a different "
                        "version of the collection; not installed")
    if expected is not None:
        log.info("%s verified against snapshot %s", source.marker, record.get("snapshot"))
    elif record.get("snapshot") or record.get("commit"):
        log.warning("no metadata checksum known for %s; %s not verified",
                    record.get("snapshot") or record.get("commit"), source.marker)
    archive = record.pop("archive", None)
    record = {**record, "metadata_sha256": actual, "verified": expected is not None,
              "archive_sha256": io.sha256_file(archive) if archive is not None else None}
    (root / schemas.INSTALL_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _extract(archive: Path, into: Path, *, delete_bad: bool, progress: bool) -> None:
    """Extract a zip into ``into``, skipping ``__MACOSX``; reject unsafe entry names."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not _is_junk(m.filename)]
            for member in members:
                _check_member(member.filename, into, archive)
            for member in tqdm(members, desc=f"extracting {archive.name}", unit="file",
                               disable=not progress):
                zf.extract(member, into)
    except (zipfile.BadZipFile, EOFError) as exc:
        if delete_bad:
            archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: not a readable zip archive ({exc})"
                        + ("; it was deleted, run again to download it anew"
                           if delete_bad else "")) from exc


def _is_junk(name: str) -> bool:
    """True for macOS resource-fork entries (``__MACOSX/...``)."""
    return any(part in JUNK_DIRS for part in PurePosixPath(name.replace("\\", "/")).parts)


def _check_member(name: str, into: Path, archive: Path) -> None:
    """Raise ``DataError`` if a zip entry would land outside ``into``."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    inside = (into / posix).resolve().is_relative_to(into.resolve())
    if posix.startswith("/") or ".." in parts or PureWindowsPath(posix).drive or not inside:
        raise DataError(f"{archive}: entry {name!r} points outside the folder it is "
                        f"extracted to; refusing to extract this archive")


def _find_root(top: Path, marker: str) -> Path | None:
    """``top`` or the folder below it (through single sub-folders) that holds ``marker``."""
    root = top
    while not (root / marker).exists():
        children = [p for p in root.iterdir()
                    if p.name not in JUNK_DIRS and not p.name.startswith(".")]
        if len(children) != 1 or not children[0].is_dir():
            return None
        root = children[0]
    return root


def _place(new: Path, final: Path) -> None:
    """Move ``new`` to ``final`` with ``os.replace``, replacing what was there."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    """Delete a file, symlink (not its target) or folder tree."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
