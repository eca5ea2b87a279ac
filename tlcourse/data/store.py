"""Where a dataset's files are: resolve → data home → read-only mirror → download (ARCHITECTURE.md §6).

:func:`fetch` returns the folder of the first *verified* copy of a dataset of :mod:`tlcourse.data.catalog`:

1. the **data home** (``TLCOURSE_DATA_HOME``; default ``datasets/`` in the checkout);
2. a read-only **mirror** folder with the same layout (``TLCOURSE_DATA_MIRROR``), never written to;
   then the folder an operating-system package installs, for the datasets that name one (``system_copies``:
   Debian's ``dataset-fashion-mnist``), read-only too;
3. a **download** with :func:`pooch.retrieve` from the canonical URL(s), in order: pooch streams each file with a
   progress bar into a temporary folder in the data home, checks its sha256 where the registry knows it (a
   mismatch deletes it) and unpacks it with its ``Unzip``/``Untar`` processors; every file the registry lists is
   then verified and the folder renamed into place.

A checksum mismatch raises :class:`ChecksumError` and the bad file is removed; no network (or ``download=False``)
raises :class:`DatasetUnavailableError` naming the three ways to get the data.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pooch

from tlcourse._plumbing import choose
from tlcourse.data.catalog import DATASETS, DatasetSpec, Download, spec_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "EXTRACTORS",
    "DatasetUnavailableError",
    "ChecksumError",
    "VerifyReport",
    "data_home",
    "mirror_dir",
    "sha256_file",
    "folder_digest",
    "download_url",
    "fetch",
    "verify",
    "dataset_status",
]


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------
class DatasetUnavailableError(RuntimeError):
    """A dataset is neither in the data home nor in the mirror, and could not be downloaded.

    Example:
        >>> issubclass(DatasetUnavailableError, RuntimeError)
        True
    """


class ChecksumError(DatasetUnavailableError):
    """A downloaded file's sha256 (or a folder's digest) differs from the registry's; the file was removed.

    Example:
        >>> str(ChecksumError("x.npz: expected sha256 aa…, got bb…"))
        'x.npz: expected sha256 aa…, got bb…'
    """


# ----------------------------------------------------------------------------------------------------------------
# Locations
# ----------------------------------------------------------------------------------------------------------------
def data_home() -> Path:
    """The writable data home: ``TLCOURSE_DATA_HOME``, else ``datasets/`` in the checkout (created if missing).

    Example:
        >>> data_home().is_dir()
        True
    """
    env = os.environ.get("TLCOURSE_DATA_HOME", "").strip()
    home = Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "datasets"
    home.mkdir(parents=True, exist_ok=True)
    return home


def mirror_dir() -> Path | None:
    """The read-only mirror folder named by ``TLCOURSE_DATA_MIRROR``, or ``None`` when unset.

    Example:
        >>> mirror_dir() is None or isinstance(mirror_dir(), Path)
        True
    """
    env = os.environ.get("TLCOURSE_DATA_MIRROR", "").strip()
    return Path(env).expanduser() if env else None


# ----------------------------------------------------------------------------------------------------------------
# Checksums and verification
# ----------------------------------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:12]
        'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _folder_files(folder: Path) -> list[str]:
    """Files under ``folder`` (relative POSIX paths, byte-sorted), ``SOURCE.md`` at the top excluded."""
    rels = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted((r for r in rels if r != "SOURCE.md"), key=lambda r: r.encode("utf-8"))


def folder_digest(folder: str | os.PathLike[str]) -> tuple[str, int]:
    """Digest and count of an image folder: sha256 of the sorted ``"<relpath> <sha256>\\n"`` lines.

    The method of ``shared/data/hymenoptera_data/SOURCE.md`` (``SOURCE.md`` itself is excluded).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_bytes(b"abc")
        >>> folder_digest(d)[1]
        1
    """
    folder = Path(folder)
    rels = _folder_files(folder)
    text = "".join(f"{rel} {sha256_file(folder / rel)}\n" for rel in rels)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), len(rels)


def _signature(spec: DatasetSpec, root: Path) -> tuple[Any, ...]:
    """Cheap stat signature of the files a verification reads (the memo key)."""
    if spec.digest is not None:
        paths = [root / rel for rel in _folder_files(root)] if root.is_dir() else []
    else:
        paths = [root / rel for rel in spec.files]
    sig: list[Any] = []
    for p in paths:
        try:
            st = p.stat()
            sig.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append((str(p), None, None))
    return tuple(sig)


_VERIFIED: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _problems(spec: DatasetSpec, root: Path, *, memo: bool = True) -> tuple[str, ...]:
    """What is wrong with the copy of ``spec`` under ``root`` (empty: verified). Memoised on path + mtimes."""
    if not root.is_dir():
        return (f"{root} does not exist",)
    key = (spec.name, spec.digest, tuple(sorted(spec.files.items())), str(root), _signature(spec, root))
    if memo and key in _VERIFIED:
        return _VERIFIED[key]
    problems: list[str] = []
    for rel, expected in spec.files.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        got = sha256_file(path)
        if got != expected and not _same_content(path, spec.unpacked.get(rel)):
            problems.append(f"{path}: expected sha256 {expected}, got {got}")
    if spec.digest is not None:
        got, count = folder_digest(root)
        if spec.file_count is not None and count != spec.file_count:
            problems.append(f"{root}: expected {spec.file_count} files, found {count}")
        if got != spec.digest:
            problems.append(f"{root}: expected folder digest {spec.digest}, got {got}")
    result = tuple(problems)
    if memo:
        _VERIFIED[key] = result
    return result


def _same_content(path: Path, unpacked: str | None) -> bool:
    """Whether the gzip file ``path`` decompresses to bytes with sha256 ``unpacked`` (``False`` without a digest or
    when the file is not gzip): a re-compressed copy of the registry's file, such as a Debian package's."""
    if unpacked is None:
        return False
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except (OSError, EOFError, zlib.error):
        return False
    return h.hexdigest() == unpacked


@dataclass(frozen=True)
class VerifyReport:
    """Where a dataset was found and whether it verified.

    ``where`` is ``"data home"``, ``"mirror"``, ``"system package"`` or ``None`` (not found); ``problems`` lists every failed check of
    every copy that was looked at (empty when ``ok``).

    Example:
        >>> r = VerifyReport("x", None, None, False, ("missing",))
        >>> r.ok
        False
    """

    name: str
    where: str | None
    path: Path | None
    ok: bool
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.ok:
            return f"{self.name}: ok ({self.where}: {self.path})"
        return f"{self.name}: NOT OK\n" + "\n".join(f"  - {p}" for p in self.problems)


def _candidates(spec: DatasetSpec) -> list[tuple[str, Path]]:
    places = [("data home", data_home() / spec.folder)]
    mirror = mirror_dir()
    if mirror is not None:
        places.append(("mirror", mirror / spec.folder))
    places += [("system package", Path(copy.folder)) for copy in spec.system_copies]
    return places


def verify(name: str | DatasetSpec) -> VerifyReport:
    """Look for a verified copy in the data home, the mirror, then an OS package's folder; report where and what
    failed.

    Example:
        >>> verify("breastmnist").name
        'breastmnist'
    """
    spec = spec_of(name)
    problems: list[str] = []
    for where, root in _candidates(spec):
        found = _problems(spec, root)
        if not found:
            return VerifyReport(spec.name, where, root, True, ())
        if root.exists():
            problems.extend(f"[{where}] {p}" for p in found)
    if not problems:
        places = ["the data home"] + (["the mirror"] if mirror_dir() else [])
        places += [f"{copy.folder} ({copy.package})" for copy in spec.system_copies]
        problems.append("not found in " + (" or ".join(places) if len(places) < 3
                                           else ", ".join(places[:-1]) + " or " + places[-1]))
    return VerifyReport(spec.name, None, None, False, tuple(problems))


def dataset_status() -> pd.DataFrame:
    """One row per registered dataset: name, title, where it was found, ok, licence, path.

    Example:
        >>> list(dataset_status().columns)[:4]
        ['name', 'title', 'found', 'ok']
    """
    import pandas as pd

    rows = []
    for spec in DATASETS.values():
        rep = verify(spec)
        rows.append(
            {
                "name": spec.name,
                "title": spec.title,
                "found": rep.where or "missing",
                "ok": rep.ok,
                "licence": spec.licence,
                "path": str(rep.path) if rep.path else "",
            }
        )
    return pd.DataFrame(rows, columns=["name", "title", "found", "ok", "licence", "path"])


# ----------------------------------------------------------------------------------------------------------------
# Download (pooch) and extraction (pooch's processors)
# ----------------------------------------------------------------------------------------------------------------
#: URL schemes pooch downloads itself; ``file://`` is copied by :func:`_copy_file` (``urllib`` read it before).
_POOCH_SCHEMES = ("http", "https", "ftp")


def _copy_file(url: str, output_file: str, pooch_obj: Any = None, check_only: bool = False) -> bool | None:
    """A pooch downloader for ``file://`` URLs: copy the local file (``FileNotFoundError`` when it is missing)."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if check_only:
        return source.is_file()
    shutil.copyfile(source, output_file)
    return None


def download_url(
    url: str, dest: str | os.PathLike[str], *, progress: bool = True, timeout: float = 30.0
) -> Path:
    """Download ``url`` to ``dest`` with pooch's downloader and its progress bar (raises ``OSError`` on failure).

    ``http(s)://`` and ``ftp://`` go through ``pooch.HTTPDownloader`` / ``pooch.FTPDownloader``; ``file://`` is
    copied. No checksum here: :func:`fetch` checks what it downloads.

    Example:
        >>> download_url("http://127.0.0.1:9/none", "/tmp/x.part", progress=False)  # doctest: +SKIP
    """
    dest = Path(dest)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "file":
        _copy_file(url, str(dest))
    elif scheme in ("http", "https"):
        pooch.HTTPDownloader(progressbar=progress, timeout=timeout)(url, str(dest), None)
    elif scheme == "ftp":
        pooch.FTPDownloader(progressbar=progress, timeout=timeout)(url, str(dest), None)
    else:
        raise ValueError(f"unknown url type: {url!r}")
    return dest


def _safe_target(root: Path, member_name: str) -> Path:
    target = (root / member_name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ChecksumError(f"archive member {member_name!r} would extract outside {root}; refusing the archive")
    return target


def _extract_zip(archive: Path, dest: Path) -> None:
    """``pooch.Unzip`` into ``dest``, once no member would land outside it."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            _safe_target(dest, member)
    pooch.Unzip(extract_dir=str(dest))(str(archive), "download", None)


def _extract_tar_gz(archive: Path, dest: Path) -> None:
    """``pooch.Untar`` into ``dest``, once every member is checked: on Python < 3.12 pooch extracts without
    tarfile's ``"data"`` filter, so names outside ``dest``, links and device files are refused here."""
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf.getmembers():
            _safe_target(dest, member.name)
            if not (member.isfile() or member.isdir()):
                raise ChecksumError(f"archive member {member.name!r} is a link or a special file; refusing the archive")
    pooch.Untar(extract_dir=str(dest))(str(archive), "download", None)


def _extract_file(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    os.replace(archive, dest / "file")


#: Archive kind → extractor ``(archive, dest_folder) -> None``. A plain file lands as ``dest/file``.
EXTRACTORS: dict[str, Callable[[Path, Path], None]] = {
    "zip": _extract_zip,
    "tar.gz": _extract_tar_gz,
    "file": _extract_file,
}


def _unavailable_message(spec: DatasetSpec, reason: str) -> str:
    home = data_home()
    urls = "\n".join(f"       {d.urls[0]}  ({d.kind} → {home / d.target})" for d in spec.downloads)
    return (
        f"Dataset {spec.name!r} ({spec.title}) is not available: {reason}\n"
        f"Three ways to get it:\n"
        f"  (1) connect to the internet and rerun `tlcourse data fetch {spec.name}` "
        f"(or `tlcourse.data.fetch({spec.name!r})`);\n"
        f"  (2) download by hand and unpack into {home / spec.folder}:\n{urls}\n"
        f"  (3) point TLCOURSE_DATA_MIRROR at a folder holding {spec.folder}/ "
        f"(e.g. a course-provided copy), then rerun."
        + "".join(f"\nOr install the system package that holds it ({copy.manager} {copy.package}: {copy.folder})."
                  for copy in spec.system_copies)
    )


def _rmtree_quiet(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch's INFO lines ("Downloading data from …", "SHA256 hash of downloaded file …") off; its bar stays."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _unpacker(download: Download, dest: Path) -> Callable[[str, str, Any], str]:
    """A pooch processor: unpack the downloaded file into ``dest`` with ``EXTRACTORS[download.kind]``; an archive
    that cannot be read is a :class:`ChecksumError`."""
    extractor = choose(EXTRACTORS, download.kind, "archive kind")

    def unpack(fname: str, action: str, pooch_obj: Any) -> str:
        try:
            extractor(Path(fname), dest)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as err:
            raise ChecksumError(
                f"{download.urls[0]}: the downloaded {download.kind} archive is corrupt ({err}); removed"
            ) from err
        return str(dest)

    return unpack


def _downloader_for(url: str, progress: bool, downloader: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """The downloader ``pooch.retrieve`` gets: the caller's ``downloader(url, dest, progress=...)``, the copy of a
    ``file://`` URL, or ``None`` (pooch picks its own by protocol)."""
    if downloader is None:
        return _copy_file if urllib.parse.urlsplit(url).scheme.lower() == "file" else None

    def call(url: str, output_file: str, pooch_obj: Any = None, check_only: bool = False) -> None:
        try:
            downloader(url, output_file, progress=progress)
        except ValueError as err:  # a failed download, not pooch's checksum mismatch (a ValueError too)
            raise OSError(str(err)) from err

    return call


def _retrieve(
    spec: DatasetSpec, download: Download, work: Path, progress: bool, downloader: Callable[..., Any] | None
) -> Path:
    """Fetch ``download`` with ``pooch.retrieve`` (its URLs in order) into ``work``, sha256-checked where known,
    and unpack it into ``work/unpacked``, which is returned."""
    known_hash = spec.known_hash(download)
    processor = _unpacker(download, work / "unpacked")
    errors = []
    for url in download.urls:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if downloader is None and scheme not in (*_POOCH_SCHEMES, "file"):
            errors.append(f"{url}: unknown url type {scheme!r}")
            continue
        fname = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
        try:
            with _quiet_pooch():
                pooch.retrieve(url, known_hash=known_hash, fname=fname, path=work / "download",
                               processor=processor, downloader=_downloader_for(url, progress, downloader),
                               progressbar=progress)
            return work / "unpacked"
        except OSError as err:  # requests' errors (connection, HTTP status, timeout, bad URL) are OSErrors
            errors.append(f"{url}: {err}")
        except ValueError as err:  # pooch's sha256 mismatch: it has deleted the download
            raise ChecksumError(
                f"Dataset {spec.name!r}: downloaded files failed verification and were removed:\n  - {url}: {err}"
            ) from err
    raise DatasetUnavailableError(_unavailable_message(spec, f"download failed ({'; '.join(errors)})"))


def _move_into_place(spec: DatasetSpec, stage: Path, home: Path) -> None:
    """Rename every verified download from ``stage/tree`` into the data home; an older copy is moved aside."""
    for i, download in enumerate(spec.downloads):
        final = home / download.target
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists() or final.is_symlink():
            old = stage / f"_old{i}"
            os.replace(final, old)
        os.replace(stage / "tree" / download.target, final)
        if old is not None:
            _rmtree_quiet(old)


def _install(spec: DatasetSpec, progress: bool, downloader: Callable[..., Any] | None) -> Path:
    """Download every file of ``spec`` into a temp folder in the data home, verify, rename into place."""
    home = data_home()
    stage = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", suffix=".tmp", dir=home))
    try:
        for i, download in enumerate(spec.downloads):
            unpacked = _retrieve(spec, download, stage / f"_get{i}", progress, downloader)
            source = unpacked / "file" if download.kind == "file" else unpacked / download.member
            if not source.exists():
                raise ChecksumError(
                    f"{download.urls[0]}: the archive has no {download.member!r}; "
                    f"found {sorted(p.name for p in unpacked.iterdir())}"
                )
            placed = stage / "tree" / download.target
            placed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, placed)
            _rmtree_quiet(stage / f"_get{i}")
        problems = _problems(spec, stage / "tree" / spec.folder, memo=False)
        if problems:
            raise ChecksumError(
                f"Dataset {spec.name!r}: downloaded files failed verification and were removed:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )
        _move_into_place(spec, stage, home)
    finally:
        _rmtree_quiet(stage)
    return home / spec.folder


def fetch(
    name: str | DatasetSpec,
    *,
    download: bool = True,
    progress: bool = True,
    downloader: Callable[..., Any] | None = None,
) -> Path:
    """Return the folder of a verified copy: data home, else mirror (read-only), else download.

    ``name`` may be a registered name or a :class:`~tlcourse.data.catalog.DatasetSpec` (e.g. a test's). The
    download is ``pooch.retrieve``'s; ``downloader(url, dest, progress=...)``, when given, fetches one URL instead
    (e.g. :func:`download_url`).

    Example:
        >>> fetch("breastmnist", download=False).name  # doctest: +SKIP
        'medmnist'
    """
    spec = spec_of(name)
    report = verify(spec)
    if report.ok and report.path is not None:
        return report.path
    found = [p for p in report.problems if not p.startswith("not found")]
    reason = "no verified copy in the data home or the mirror"
    if found:
        reason += ". Problems found:\n" + "\n".join(f"    {p}" for p in found)
    if not download:
        raise DatasetUnavailableError(_unavailable_message(spec, reason + "\n(download=False)"))
    return _install(spec, progress, downloader)
