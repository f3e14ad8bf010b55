"""The versions of the Cohen COVID-19 collection: each ``metadata.csv`` schema it has had,
and the named snapshots ``cxr data download --snapshot`` fetches.

The collection (github.com/ieee8023/covid-chestxray-dataset) grew from a few dozen rows in
March 2020 to about a thousand, and its ``metadata.csv`` changed shape on the way. Each
schema is written down once here: the header as it appeared, the copy it was read from
(``seen_in``: repository@commit on the code host), and what its values mean.
``recognise`` names the schema of a header; ``cxrlib.data`` normalises every schema to the
same tables (``patientid``, ``offset``, ``finding``, ``survival``, ``view``, ``modality``,
``folder``, ``filename``).

What changed, in order:

- ``2020-03``: the first public file. No ``modality`` column (a CT image is a row with
  ``view`` = ``CT``; every other row is an X-ray), no ``folder`` (every file is in
  ``images/``), the id header spelled ``Patientid``, a stray space in `` url``, offsets
  left blank or a single space.
- ``2020-04``: ``modality`` (``X-ray``/``CT``) and ``folder`` columns; clinical columns
  (``intubated``, ``went_icu``, ``needed_supplemental_O2``, lab values). ``view`` holds the
  projection only.
- ``2020-06``: an ``in_icu`` column beside ``went_icu``; the papers' snapshot
  (2020-06-27). Some copies end every line with an empty unnamed column.
- ``current``: ``finding`` became a path (``Pneumonia/Viral/COVID-19``,
  ``Pneumonia/Bacterial/Streptococcus``; a lone ``ARDS`` became ``Pneumonia``) and an
  ``RT_PCR_positive`` column was added.

Throughout, ``survival`` is ``Y`` (survived), ``N`` (died) or blank (unknown), and
``offset`` is days since symptoms or admission, blank when unknown.
"""
from __future__ import annotations

from dataclasses import dataclass

from cxrlib.errors import DataError

COHEN_REPO = "ieee8023/covid-chestxray-dataset"
CODE_HOST = "https://github.com"  # serves <repo>/archive/<commit>.zip


def normal_name(column: str) -> str:
    """A header as the schemas compare it: stripped, lower case, spaces as underscores."""
    return str(column).strip().lower().replace(" ", "_")


@dataclass(frozen=True)
class Schema:
    """One shape of ``metadata.csv``."""

    name: str
    since: str
    seen_in: str  # repository@commit of a copy on the code host
    header: tuple[str, ...]  # the columns as written in that copy
    requires: frozenset[str]  # normalised columns that must be present
    lacks: frozenset[str]  # normalised columns that must be absent
    meanings: str

    def describe(self) -> str:
        return (f"{self.name} (since {self.since}: " + ", ".join(sorted(self.requires))
                + (f"; without {', '.join(sorted(self.lacks))}" if self.lacks else "") + ")")


_CORE = frozenset({"patientid", "offset", "finding", "survival", "view", "filename"})


def _with(header: tuple[str, ...], column: str, after: str) -> tuple[str, ...]:
    """``header`` with ``column`` inserted after the column ``after``."""
    at = header.index(after) + 1
    return (*header[:at], column, *header[at:])


# Each later header is the one before it plus the column that version added.
_HEADER_2020_04 = (
    "patientid", "offset", "sex", "age", "finding", "survival", "intubated",
    "intubation_present", "went_icu", "needed_supplemental_O2", "extubated", "temperature",
    "pO2_saturation", "leukocyte_count", "neutrophil_count", "lymphocyte_count", "view",
    "modality", "date", "location", "folder", "filename", "doi", "url", "license",
    "clinical_notes", "other_notes", "")
_HEADER_2020_06 = _with(_HEADER_2020_04, "in_icu", after="went_icu")
_HEADER_CURRENT = _with(_HEADER_2020_06, "RT_PCR_positive", after="finding")

SCHEMAS: dict[str, Schema] = {s.name: s for s in (
    Schema(
        name="2020-03", since="March 2020 (first public release)",
        seen_in=f"{COHEN_REPO}@015fca02bddb9e9bd8983fe1015ef73391b3efe6",
        header=("Patientid", "offset", "sex", "age", "finding", "survival", "view", "date",
                "location", "filename", "doi", " url", "license", "notes"),
        requires=_CORE, lacks=frozenset({"modality"}),
        meanings="no modality column: view 'CT' marks a CT image, every other row is an "
                 "X-ray; no folder column: files are in images/; finding is one name "
                 "('COVID-19', 'SARS', 'ARDS', ...); offset may be blank or a space"),
    Schema(
        name="2020-04", since="spring 2020 (modality, folder and clinical columns)",
        seen_in="bganglia/covid-chestxray-dataset@1508d692610db6b6ec0f2548e1ef9caaf55b6f96",
        header=_HEADER_2020_04,
        requires=_CORE | {"modality"}, lacks=frozenset({"in_icu", "rt_pcr_positive"}),
        meanings="modality 'X-ray' or 'CT'; view is the projection (PA, AP, AP Supine, L, "
                 "...); finding is one name or two joined by a comma ('COVID-19, ARDS')"),
    Schema(
        name="2020-06", since="June 2020 (in_icu; the papers' snapshot of 2020-06-27)",
        seen_in="zegami/covid-chestxray-dataset@f0c75430b7df607103147db8fa5beba5dab3a60e",
        header=_HEADER_2020_06,
        requires=_CORE | {"modality", "in_icu"}, lacks=frozenset({"rt_pcr_positive"}),
        meanings="as 2020-04, plus in_icu; CT slices have views 'Axial' or 'Coronal'"),
    Schema(
        name="current", since="later 2020 (finding as a path, RT_PCR_positive)",
        seen_in=f"{COHEN_REPO}@6a4242344473ccb5ed0d2148d8c7bfb1691e4ed8",
        header=_HEADER_CURRENT,
        requires=_CORE | {"modality", "rt_pcr_positive"}, lacks=frozenset(),
        meanings="finding is a path, the disease its last part ('Pneumonia/Viral/COVID-19'); "
                 "RT_PCR_positive 'Y' or blank"),
)}

# Other spellings a column has had, after ``normal_name``.
ALIASES = {"patient_id": "patientid"}


def canonical_columns(columns) -> dict[str, str]:
    """``{column as written: canonical name}`` for the columns of a header."""
    return {c: ALIASES.get(normal_name(c), normal_name(c)) for c in columns}


def recognise(columns, where: str = "metadata.csv") -> Schema:
    """The schema of a header, or a ``DataError`` in one line naming the columns found and
    the schemas known. The newest schema whose columns match wins."""
    found = set(canonical_columns(columns).values())
    for schema in reversed(list(SCHEMAS.values())):
        if schema.requires <= found and not schema.lacks & found:
            return schema
    shown = [c.strip() for c in columns if str(c).strip() and not str(c).startswith("Unnamed")]
    raise DataError(f"{where}: unknown metadata schema; columns found: {', '.join(shown)}. "
                    "Known schemas: " + "; ".join(s.describe() for s in SCHEMAS.values()))


@dataclass(frozen=True)
class Snapshot:
    """A named version of the collection that ``cxr data download --snapshot`` fetches."""

    name: str
    date: str
    repo: str
    commit: str | None  # None: not known offline (pass one with --commit)
    schema: str
    metadata_sha256: str | None  # of metadata.csv, checked after extraction when known
    archive_sha256: str | None  # of the zip, checked when known
    note: str

    def url(self, commit: str | None = None) -> str | None:
        commit = commit or self.commit
        return f"{CODE_HOST}/{self.repo}/archive/{commit}.zip" if commit else None


SNAPSHOTS: dict[str, Snapshot] = {s.name: s for s in (
    Snapshot(
        name="2020-03", date="March 2020", repo=COHEN_REPO,
        commit="015fca02bddb9e9bd8983fe1015ef73391b3efe6", schema="2020-03",
        metadata_sha256=None, archive_sha256=None,
        note="the earliest metadata.csv in the code host's index of the collection; its "
             "checksums could not be computed offline, so the download is not verified"),
    Snapshot(
        name="2020-06", date="2020-06-27", repo=COHEN_REPO, commit=None, schema="2020-06",
        metadata_sha256="933e38b2c77e7c10d0762d219b316c543ae6a81eb153517551c4596d6e349d5e",
        archive_sha256=None,
        note="the papers' time. The metadata.csv checksum is that of the project's copy of "
             "the 2020-06-27 state (the one in ../shared/data); the upstream commit of that "
             "day could not be looked up offline, so give it with --commit (or install a "
             "copy with --from): the metadata file is verified either way"),
)}

INSTALL_RECORD = ".cxr-snapshot.json"  # beside metadata.csv: what `cxr data download` fetched
DEFAULT_SNAPSHOT = "master"  # today's collection: the tip of the default branch, unverified


def snapshot(name: str) -> Snapshot:
    """The named snapshot, or a ``DataError`` naming the ones known."""
    try:
        return SNAPSHOTS[name]
    except KeyError:
        raise DataError(f"unknown snapshot {name!r}; known: {', '.join(SNAPSHOTS)} (or leave "
                        "it out for today's collection)") from None


def snapshot_of_metadata(sha256: str) -> str | None:
    """The name of the snapshot whose metadata.csv has this hash, if any."""
    return next((s.name for s in SNAPSHOTS.values() if s.metadata_sha256 == sha256), None)
