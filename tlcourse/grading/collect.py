"""``tlcourse collect``: an LMS's bulk download (a zip, or a folder) sorted into ``submitted/<student>/<assignment>/``.

The download is hostile data. Only the names the LMS made are trusted to say whose work a file is: the
:data:`COLLECT_PATTERNS` of an LMS are matched against the *top-level* entries of the download (a file at the top
of the zip or folder, or a top-level folder in Moodle's "submissions in folders" layout). Everything inside one
upload — a folder, or one level of a zip the student uploaded — belongs to that student and is never matched again,
so a file named after a classmate inside one's own upload is still one's own. Zips are read member by member with
:mod:`zipfile` (links, ``..``, absolute names, encryption, duplicates and nested archives refused; sizes, the
compression ratio and the whole download's expansion capped while reading); folders through :mod:`.safefs`.

The LMS user id in a name is mapped to the nbgrader student whose ``lms_user_id`` it is (import the roster first:
``tlcourse export --roster``). The result is a :class:`CollectReport`: every roster student and every id seen is
collected, missing, refused or excused, with reasons; skipped entries are listed with theirs. Per collected student a
sidecar ``.collect.json`` keeps the LMS's late marker and the file's time (for late penalties).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tlcourse.grading.course import (
    ASSIGNMENT_PATTERN,
    CourseError,
    course_dir,
    load_nbgrader_config,
    open_gradebook,
    parse_notebook,
    source_notebooks,
    step_dir,
)
from tlcourse.grading.safefs import Refused, kind_of, read_regular, scan, write_new
from tlcourse.grading.submissions import is_safe_id

__all__ = ["COLLECT_PATTERNS", "LMS_ORDER", "CollectReport", "StudentReport", "Upload", "collect", "match_upload"]

#: How LMS bulk downloads name what students handed in, matched against a TOP-LEVEL name only (a file at the top of
#: the download, or a top-level folder). Groups: ``student_id`` (the LMS user id), ``late`` (the LMS's late marker),
#: ``attempt`` (the LMS's ordering of uploads), ``file`` (the student's own file name, if any). The name part before
#: the id never holds ``_`` (Canvas squashes names, Moodle turns ``_`` into spaces), so a student's file name can
#: never move the id.
COLLECT_PATTERNS: dict[str, str] = {
    # Canvas: smithjane_12345_67890_00_warmup.ipynb; smithjane_LATE_12345_67890_00_warmup-1.ipynb (a re-upload)
    "canvas": r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<student_id>\d+)_(?P<attempt>\d+)_(?P<file>.+)$",
    # Moodle file layout: Jane Smith_12345_assignsubmission_file_00_warmup.ipynb; folder layout (3.x and 4.x):
    # "Jane Smith_12345_assignsubmission_file_/00_warmup.ipynb" (the folder is the top-level name)
    "moodle": r"^(?P<name>[^_/]+)_(?P<student_id>\d+)_assignsubmission_(?:file|onlinetext)(?:_(?P<file>.*))?$",
    # Blackboard: 00_warmup_jsmith_attempt_2027-01-15-23-59-00_00_warmup.ipynb (and a .txt receipt per attempt)
    "blackboard": r"^(?P<name>.+?)_(?P<student_id>[^_/]+)_attempt_(?P<attempt>\d{4}(?:-\d{2}){5})"
                  r"(?:_(?P<file>.+)|\.txt)?$",
}

NOTEBOOK_BYTES = 20 * 1024 * 1024  # one notebook, read from a file or a zip member
ARCHIVE_BYTES = 64 * 1024 * 1024  # one zip a student uploaded
EXPANDED_BYTES = 2 * 1024 * 1024 * 1024  # everything read out of one download, all members together
STUDENT_BYTES = 256 * 1024 * 1024  # everything read for one student (one student cannot use up the rest)
MAX_RATIO = 200  # expanded : compressed, checked while reading (once past RATIO_FLOOR bytes)
RATIO_FLOOR = 1024 * 1024
MAX_MEMBERS = 2_000  # members of a zip a student uploaded
MAX_DOWNLOAD_MEMBERS = 50_000  # members of the download itself
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".jar", ".whl", ".zst")
IGNORED_PARTS = ("__MACOSX", ".ipynb_checkpoints")  # what zipping on a Mac or Jupyter adds: never a submission
SIDECAR = ".collect.json"

_REUPLOAD = re.compile(r"^(?P<stem>.*?)(?:-(?P<n>\d+)| \((?P<copy>\d+)\))?$")


def _reupload(file: str | None) -> int:
    """Canvas's ``-N`` re-upload suffix of a file name (``00_warmup-2.ipynb`` -> 2), else 0."""
    match = _REUPLOAD.match(Path(file or "").stem)
    return int(match["n"]) if match and match["n"] else 0


#: Each LMS's own ordering of one student's uploads: (attempt, file order); a larger key is later. Only the
#: latest attempt counts; within it, of two files with one name the later one.
LMS_ORDER: dict[str, Callable[[re.Match[str]], tuple]] = {
    # a download holds the latest submission only; its files' ids grow with time, "-N" marks a re-upload
    "canvas": lambda m: ((), (int(m["attempt"]), _reupload(m["file"]))),
    "moodle": lambda m: ((), ()),  # one folder (or one set of files) per student: no two attempts
    "blackboard": lambda m: ((m["attempt"],), ()),  # every attempt; YYYY-MM-DD-HH-MM-SS sorts in time order
}


@dataclass(frozen=True)
class Upload:
    """A top-level entry of a download that the LMS named after a student."""

    entry: str  # the top-level name
    lms_id: str
    late: bool
    order: tuple
    folder: bool = False
    file: str = ""  # the student's own file name, as the LMS kept it (empty for a folder)


def match_upload(name: str, lms: str, folder: bool = False) -> Upload | None:
    """The student a top-level name belongs to, by ``lms``'s naming; ``None`` when it is not named like one.

    Example:
        >>> up = match_upload("smithjane_LATE_1001_5001_00_warmup-1.ipynb", "canvas")
        >>> up.lms_id, up.late, up.order, up.file
        ('1001', True, ((), (5001, 1)), '00_warmup-1.ipynb')
        >>> match_upload("Jane Smith_12345_assignsubmission_file_", "moodle", folder=True).lms_id
        '12345'
        >>> match_upload("smithjane_1001_5001_x/../y.ipynb", "canvas") is None
        True
    """
    if "/" in name or "\\" in name:
        return None
    found = re.fullmatch(COLLECT_PATTERNS[lms], name, re.DOTALL)  # a newline in a file name is just a char
    if not found:
        return None
    groups = found.groupdict()
    return Upload(name, found["student_id"], bool(groups.get("late")), LMS_ORDER[lms](found), folder,
                  groups.get("file") or "")


# ------------------------------------------------------------------------------------------------ the report
@dataclass
class StudentReport:
    """One student (or one id seen in the download): status, notebooks written, reasons."""

    student: str
    status: str = "missing"  # collected | missing | refused | excused
    on_roster: bool = False
    notebooks: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _shown(text: str) -> str:
    """A name as it may be printed: control characters (newlines, terminal escapes) escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass
class CollectReport:
    """What :func:`collect` did with a download: one :class:`StudentReport` per student, and the skipped entries.

    Example:
        >>> report = CollectReport("00_warmup", "canvas")
        >>> report.student("jane", roster=True).status = "collected"
        >>> report.student("john", roster=True).reasons.append("nothing handed in")
        >>> report.collected, report.ok
        (['jane'], False)
        >>> print(report.table())
        jane  collected
        john  missing    nothing handed in
    """

    assignment: str
    lms: str
    students: dict[str, StudentReport] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (entry, why)

    def student(self, key: str, roster: bool = False) -> StudentReport:
        """The entry of ``key`` (created when new)."""
        entry = self.students.setdefault(key, StudentReport(key))
        entry.on_roster = entry.on_roster or roster
        return entry

    @property
    def collected(self) -> list[str]:
        return sorted(k for k, s in self.students.items() if s.status == "collected")

    @property
    def problems(self) -> list[StudentReport]:
        """Roster students (every id seen, when there is no roster) neither collected nor excused."""
        with_roster = any(s.on_roster for s in self.students.values())
        return [s for s in self.students.values()
                if s.status in ("missing", "refused") and (s.on_roster or not with_roster)]

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> str:
        """One line per student (status and reason), then the skipped entries."""
        rows = sorted(self.students.values(), key=lambda s: (not s.on_roster, s.student))
        width = max((len(_shown(s.student)) for s in rows), default=0)
        lines = [f"{_shown(s.student):<{width}}  {s.status:<9}  {_shown('; '.join(s.reasons))}".rstrip()
                 for s in rows]
        lines += [f"skipped {_shown(entry)}: {_shown(why)}" for entry, why in self.skipped]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ reading
class Budget:
    """The bytes one download may expand to, all members together (a zip bomb stops here)."""

    def __init__(self, limit: int, what: str = "the download", parent: Budget | None = None) -> None:
        self.left, self.limit, self.what, self.parent = limit, limit, what, parent

    def spend(self, n: int) -> None:
        """Count ``n`` bytes read; :class:`Refused` once past the limit (here or in the parent budget)."""
        if self.parent is not None:
            self.parent.spend(n)
        self.left -= n
        if self.left < 0:
            raise Refused(f"{self.what} expanded past {_mib(self.limit)} MiB; stopped reading it")


def _mib(n: int) -> str:
    return f"{n / 2**20:.3g}"


def _zip_time(info: zipfile.ZipInfo) -> tuple[datetime, str]:
    """A member's modification time: the UTC "extended timestamp" field when there is one, else its DOS time."""
    extra = info.extra
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        body, extra = extra[4:4 + size], extra[4 + size:]
        if kind == 0x5455 and len(body) >= 5 and body[0] & 1:
            return datetime.fromtimestamp(struct.unpack("<i", body[1:5])[0], UTC), "zip extended timestamp (UTC)"
    try:
        return datetime(*info.date_time).astimezone(), "zip DOS time (no zone in the zip: read as local time)"
    except ValueError:
        return datetime.fromtimestamp(0, UTC), "zip DOS time (invalid)"


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


#: Why a zip member is refused: (test of the member and its path parts, reason).
MEMBER_CHECKS: tuple[tuple[Callable[[zipfile.ZipInfo, list[str]], bool], str], ...] = (
    (lambda i, p: bool(i.flag_bits & 0x1), "encrypted"),
    (lambda i, p: re.match(r"^([/\\]|[A-Za-z]:)", i.filename) is not None, "an absolute path"),
    (lambda i, p: ".." in p, "a '..' in its path"),
    (lambda i, p: not p, "an empty name"),
    (lambda i, p: i.create_system == 3 and stat.S_ISLNK(i.external_attr >> 16), "a symbolic link"),
    (lambda i, p: i.create_system == 3 and (i.external_attr >> 16) & 0o170000 not in (0, stat.S_IFREG, stat.S_IFDIR),
     "not a regular file"),
)


def _central_entries(data: bytes) -> int | None:
    """Members a zip's end record announces (``None`` when it has none, or is zip64): read before parsing."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return None
    count = struct.unpack("<H", data[end + 10:end + 12])[0]
    return None if count == 0xFFFF else count


class ZipSource:
    """The members of one zip (the download, or one level of a zip a student uploaded), checked before any read."""

    def __init__(self, file: Any, nested: bool = False) -> None:
        self.zip = zipfile.ZipFile(file)
        self.nested = nested
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.refused: list[tuple[str, str]] = []
        limit = MAX_MEMBERS if nested else MAX_DOWNLOAD_MEMBERS
        infos = self.zip.infolist()
        if len(infos) > limit:
            raise Refused(f"a zip of {len(infos)} members, over the limit of {limit}")
        names = [("/".join(_parts(i.filename)), i) for i in infos if not i.is_dir()]
        counts: dict[str, int] = {}
        for name, _ in names:
            counts[name] = counts.get(name, 0) + 1
        for name, info in names:
            why = next((r for test, r in MEMBER_CHECKS if test(info, _parts(info.filename))), None)
            why = why or ("a duplicate name in the zip" if counts[name] > 1 else None)
            why = why or ("a nested archive (not opened: one level only)"
                          if nested and name.lower().endswith(ARCHIVE_SUFFIXES) else None)
            if why:
                self.refused.append((info.filename, why))
            else:
                self.members[name] = info

    def read(self, name: str, cap: int, budget: Budget) -> bytes:
        """A member's bytes, streamed: at most ``cap`` bytes, ``MAX_RATIO``, and the download's budget."""
        info = self.members[name]
        if info.file_size > cap:
            raise Refused(f"{_mib(info.file_size)} MiB, over the {_mib(cap)} MiB limit")
        chunks, total = [], 0
        try:
            with self.zip.open(info) as handle:
                while chunk := handle.read(1 << 16):
                    total += len(chunk)
                    if total > cap:
                        raise Refused(f"expands past the {_mib(cap)} MiB limit (its declared size was a lie)")
                    if total > RATIO_FLOOR and total > MAX_RATIO * max(info.compress_size, 1):
                        raise Refused(f"compressed more than {MAX_RATIO}:1 (a zip bomb?)")
                    budget.spend(len(chunk))
                    chunks.append(chunk)
        except Refused:
            raise
        except Exception as exc:  # bad CRC, truncated data, unknown compression: this member only
            raise Refused(f"unreadable ({type(exc).__name__}: {str(exc)[:120]})") from None
        return b"".join(chunks)

    def time(self, name: str) -> tuple[datetime, str]:
        return _zip_time(self.members[name])


class FolderSource:
    """A download unpacked into a folder: listed without following links, read through :mod:`.safefs`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.members: dict[str, int] = {}
        self.refused: list[tuple[str, str]] = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                found = scan(root / entry.name)
                self.members.update({f"{entry.name}/{rel}": size for rel, size in found.files.items()})
                self.refused += [(f"{entry.name}/{rel}", why) for rel, why in found.refused]
                if found.truncated:
                    self.refused.append((entry.name, "too many files or folders; the rest was not looked at"))
            elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                self.members[entry.name] = st.st_size
            else:
                self.refused.append((entry.name, kind_of(st.st_mode) if not stat.S_ISREG(st.st_mode)
                                     else f"a hard link ({st.st_nlink} names for one file)"))

    def read(self, name: str, cap: int, budget: Budget) -> bytes:
        """A file's bytes (a regular file, no link on the way, at most ``cap`` bytes)."""
        data = read_regular(Path(name), cap, root=self.root)
        budget.spend(len(data))
        return data

    def time(self, name: str) -> tuple[datetime, str]:
        try:
            return datetime.fromtimestamp(os.lstat(self.root / name).st_mtime, UTC), "file modification time"
        except OSError:
            return datetime.fromtimestamp(0, UTC), "file modification time (unreadable)"


def _open_download(path: Path) -> ZipSource | FolderSource:
    if path.is_dir():
        return FolderSource(path)
    try:
        return ZipSource(path)
    except (zipfile.BadZipFile, Refused, OSError, ValueError) as exc:
        raise CourseError(f"{path} is neither a folder nor a readable zip ({exc})") from None


# ------------------------------------------------------------------------------------------------ one student
@dataclass
class Candidate:
    """A notebook found in one upload: where, and how to read it (lazily, under the caps)."""

    upload: Upload
    path: str  # as shown: "top", "top/inner" or "top.zip!inner"
    stem: str
    read: Callable[[Budget], bytes]
    time: tuple[datetime, str]


def _ignored(name: str) -> bool:
    """What zipping on a Mac or Jupyter adds (``__MACOSX/``, ``._x``, ``.ipynb_checkpoints/``, dot files)."""
    return any(part in IGNORED_PARTS or part.startswith(".") for part in _parts(name))


def _stem(name: str) -> str:
    return Path(_parts(name)[-1]).stem


def _notebook(source: Any, upload: Upload, name: str, budget: Budget) -> tuple[list[Candidate], list]:
    stem = _stem(upload.file) if name == upload.entry and upload.file else _stem(name)
    return [Candidate(upload, name, stem, lambda b: source.read(name, NOTEBOOK_BYTES, b), source.time(name))], []


def _inner_reader(source: Any, name: str, inner: str) -> Callable[[Budget], bytes]:
    def read(budget: Budget) -> bytes:
        archive = ZipSource(io.BytesIO(source.read(name, ARCHIVE_BYTES, budget)), nested=True)
        return archive.read(inner, NOTEBOOK_BYTES, budget)
    return read


def _archive(source: Any, upload: Upload, name: str, budget: Budget) -> tuple[list[Candidate], list]:
    """The notebooks of a zip a student uploaded: ONE level, nested archives refused."""
    try:
        data = source.read(name, ARCHIVE_BYTES, budget)
        entries = _central_entries(data)
        if entries is not None and entries > MAX_MEMBERS:
            raise Refused(f"a zip of {entries} members, over the limit of {MAX_MEMBERS}")
        archive = ZipSource(io.BytesIO(data), nested=True)
    except Refused as exc:
        return [], [(name, str(exc))]
    except Exception as exc:  # not a zip at all, a broken directory: this upload only
        return [], [(name, f"not a readable zip ({type(exc).__name__}: {str(exc)[:120]})")]
    found = [Candidate(upload, f"{name}!{inner}", _stem(inner), _inner_reader(source, name, inner), source.time(name))
             for inner in sorted(archive.members) if inner.lower().endswith(".ipynb") and not _ignored(inner)]
    return found, [(f"{name}!{n}", why) for n, why in archive.refused]


def _other_archive(source: Any, upload: Upload, name: str, budget: Budget) -> tuple[list[Candidate], list]:
    return [], [(name, "an archive that is not a zip (not opened)")]


#: What a file of an upload is, by its suffix: suffix -> (source, upload, name, budget) -> (candidates, refusals).
UPLOAD_KINDS: dict[str, Callable[[Any, Upload, str, Budget], tuple[list[Candidate], list]]] = {
    ".ipynb": _notebook,
    ".zip": _archive,
    **{suffix: _other_archive for suffix in ARCHIVE_SUFFIXES if suffix != ".zip"},
}


def _candidates(source: Any, upload: Upload, budget: Budget) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Every notebook of one upload (a top-level file, or everything under a top-level folder), and refusals."""
    prefix = upload.entry + "/"
    names = [n for n in source.members if n.startswith(prefix) or (n == upload.entry and not upload.folder)]
    refused = [(n, why) for n, why in source.refused if (_parts(n)[:1] == [upload.entry]) and
               (upload.folder == (len(_parts(n)) > 1))]
    found: list[Candidate] = []
    for name in sorted(names):
        kind = UPLOAD_KINDS.get(Path(name).suffix.lower())
        if kind is None and not upload.folder:
            refused.append((name, "not a notebook or a zip"))
        if kind is None or _ignored(name[len(prefix):] if upload.folder else ""):
            continue
        more, why = kind(source, upload, name, budget)
        found += more
        refused += why
    return found, refused


def _norm(stem: str) -> str:
    """A notebook name for comparing: case, spaces, a ``-1`` or `` (1)`` copy suffix do not matter."""
    match = _REUPLOAD.match(stem)
    base = match["stem"] if match else stem
    return re.sub(r"[\s\-]+", "_", base.strip().lower())


def _latest(holders: Sequence[Candidate]) -> tuple[Candidate | None, str | None]:
    """The candidate of the latest upload, or a reason when two are equally late."""
    best = max(c.upload.order for c in holders)
    top = [c for c in holders if c.upload.order == best]
    if len(top) > 1:
        return None, "ambiguous, which one is it: " + ", ".join(c.path for c in top)
    return top[0], None


def _pick_notebooks(found: list[Candidate], expected: list[str]) -> tuple[dict[str, Candidate], list[str]]:
    """Notebook name -> the candidate to collect (the expected names first, else a single notebook); problems."""
    chosen: dict[str, Candidate] = {}
    problems: list[str] = []
    if found:
        attempt = max(c.upload.order[0] for c in found)
        found = [c for c in found if c.upload.order[0] == attempt]
    for name in expected:
        holders = [c for c in found if _norm(c.stem) == _norm(name)]
        if holders:
            pick, why = _latest(holders)
            chosen.update({name: pick} if pick else {})
            problems += [why] if why else []
    if not chosen and not problems and found:
        stems = sorted({_norm(c.stem) for c in found})
        if len(expected) == 1 and len(stems) == 1:
            pick, why = _latest(found)
            chosen.update({expected[0]: pick} if pick else {})
            problems += [why] if why else []
        else:
            problems.append(f"no {' / '.join(n + '.ipynb' for n in expected)} and several other notebooks, "
                            "which one is it: " + ", ".join(c.path for c in found))
    return chosen, problems


# ------------------------------------------------------------------------------------------------ the course side
@dataclass
class Roster:
    """The gradebook's students, and LMS user id -> student id (empty when nobody has an ``lms_user_id``)."""

    ids: set[str]
    by_lms: dict[str, str]

    def resolve(self, lms_id: str) -> tuple[str, str | None]:
        """(the student, or a key naming the LMS id; why it is refused, or ``None``).

        Example:
            >>> Roster({"jane"}, {"1001": "jane"}).resolve("1001"), Roster({"jane"}, {"1001": "jane"}).resolve("9")
            (('jane', None), ('(lms id 9)', 'not on the roster'))
            >>> Roster(set(), {}).resolve("..")
            ('(lms id ..)', "not a safe student id ('..')")
        """
        student = self.by_lms.get(lms_id) if self.by_lms else lms_id
        if student is None:
            return f"(lms id {lms_id})", "not on the roster"
        if not is_safe_id(student):
            return f"(lms id {lms_id})", f"not a safe student id ({student!r})"
        if self.ids and student not in self.ids:
            return f"(lms id {lms_id})", "not on the roster"
        return student, None


def _roster(coursedir: Any) -> Roster:
    with open_gradebook(coursedir) as gb:
        students = [(s.id, s.lms_user_id) for s in gb.students]
    return Roster({sid for sid, _ in students}, {str(lms): sid for sid, lms in students if lms})


def _inside(path: Path, folder: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def _write(submitted: Path, student: str, assignment: str, name: str, data: bytes) -> Path:
    """``submitted/<student>/<assignment>/<name>``, written through no link; never outside ``submitted/``."""
    folder = submitted / student / assignment
    for step in (folder.parent, folder):
        if step.is_symlink():
            raise Refused(f"{step} is a symbolic link: the notebook would lie outside {submitted}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not _inside(folder, submitted) or target.parent != folder:
        raise Refused(f"{target} would lie outside {submitted}")
    write_new(target, data)
    return target


@dataclass
class Job:
    """What one collect works with: the download, the course's folders and roster, the report it fills."""

    source: Any
    lms: str
    assignment: str
    expected: list[str]
    submitted: Path
    report: CollectReport
    budget: Budget
    roster: Roster


def _uploads(job: Job) -> dict[str, list[Upload]]:
    """LMS id -> its uploads: every top-level name the LMS's pattern matches; the rest is skipped, with why."""
    tops: dict[tuple[str, bool], list[str]] = {}
    for name in [*job.source.members, *(n for n, _ in job.source.refused)]:
        parts = _parts(name)
        tops.setdefault((parts[0] if parts else name, len(parts) > 1), []).append(name)
    found: dict[str, list[Upload]] = {}
    refused = dict(job.source.refused)
    for (top, folder), names in sorted(tops.items()):
        upload = match_upload(top, job.lms, folder)
        if upload is None:
            why = "; ".join(sorted({refused[n] for n in names if n in refused})) or f"not named like a {job.lms} upload"
            job.report.skipped.append((top + ("/" if folder else ""), why))
        else:
            found.setdefault(upload.lms_id, []).append(upload)
    return found


def _sidecar(job: Job, picks: list[Candidate]) -> bytes:
    latest = max(picks, key=lambda c: (c.upload.order, c.time[0]))
    return json.dumps({
        "lms": job.lms, "late_marker": any(c.upload.late for c in picks),
        "file_time": latest.time[0].isoformat(), "file_time_source": latest.time[1],
        "source": latest.upload.entry, "files": sorted(c.path for c in picks),
    }, indent=1).encode()


def _store(job: Job, student: str, chosen: dict[str, Candidate], budget: Budget) -> tuple[list[str], list[str]]:
    """Read, check and write the chosen notebooks of one student; (notebooks written, problems)."""
    written, problems, picks = [], [], []
    for name, cand in sorted(chosen.items()):
        try:
            data = cand.read(budget)
            parse_notebook(data, cand.path)
            _write(job.submitted, student, job.assignment, f"{name}.ipynb", data)
        except (Refused, CourseError) as exc:
            problems.append(f"{cand.path}: {exc}")
            continue
        written.append(f"{name}.ipynb")
        picks.append(cand)
    if picks:
        _write(job.submitted, student, job.assignment, SIDECAR, _sidecar(job, picks))
    return written, problems


def _collect_student(job: Job, lms_id: str, uploads: list[Upload]) -> None:
    """One LMS id: its uploads read (one level), the latest notebook(s) chosen, written, and reported."""
    student, refusal = job.roster.resolve(lms_id)
    entry = job.report.student(student)
    if refusal:
        entry.reasons.append(f"{refusal}: " + ", ".join(u.entry for u in uploads))
        entry.status = "refused"
        job.report.skipped += [(u.entry, refusal) for u in uploads]
        return
    budget = Budget(STUDENT_BYTES, f"the uploads of {student}", job.budget)
    found: list[Candidate] = []
    for upload in sorted(uploads, key=lambda u: u.order):
        more, refused = _candidates(job.source, upload, budget)
        found += more
        job.report.skipped += refused
        entry.reasons += [f"{name}: {why}" for name, why in refused if why != "not a notebook or a zip"]
    chosen, problems = _pick_notebooks(found, job.expected)
    picked = {id(c) for c in chosen.values()}
    job.report.skipped += [(c.path, "not the latest upload or not the notebook; collected: " + ", ".join(
        sorted(p.path for p in chosen.values()))) for c in found if id(c) not in picked and chosen]
    written, failed = _store(job, student, chosen, budget)
    entry.notebooks += written
    lacking = [f"missing {n}.ipynb" for n in job.expected if f"{n}.ipynb" not in written] if written else []
    entry.reasons = [*lacking, *problems, *failed, *entry.reasons]
    entry.status = "collected" if written else "refused"
    if not entry.reasons and not written:
        entry.reasons.append("no notebook in " + ", ".join(u.entry for u in uploads))


def _finish(report: CollectReport, excused: Iterable[str]) -> None:
    """Roster students with nothing are missing; excused ones are excused (their reasons kept)."""
    excused = set(excused)
    for key, entry in report.students.items():
        if entry.status == "missing" and not entry.reasons:
            entry.reasons.append("nothing in the download")
        if key in excused and entry.status in ("missing", "refused"):
            entry.status = "excused"
    for key in sorted(excused - set(report.students)):
        report.student(key).reasons.append("excused, but not on the roster and not in the download")


def collect(download: str | os.PathLike[str], assignment: str, lms: str = "canvas",
            root: str | os.PathLike[str] | None = None, excused: Iterable[str] = ()) -> CollectReport:
    """Sort a bulk download (a zip, or a folder) into ``submitted/<student>/<assignment>/``; report every student.

    Only top-level names are matched against ``COLLECT_PATTERNS[lms]``; a notebook at any depth of a student's
    upload (one level of a zip they uploaded) is theirs. ``excused`` students are not counted as missing.

    Example:
        >>> report = collect("submissions.zip", "00_warmup", lms="canvas")  # doctest: +SKIP
        >>> report.collected, report.ok  # doctest: +SKIP
        (['alice', 'bob'], True)
    """
    if lms not in COLLECT_PATTERNS:
        raise CourseError(f"unknown LMS naming {lms!r}; choose one of {sorted(COLLECT_PATTERNS)}")
    if not (ASSIGNMENT_PATTERN.match(assignment) or is_safe_id(assignment)):
        raise CourseError(f"{assignment!r} is not an assignment name")
    path = Path(download).expanduser().resolve()  # the grader's own argument: a link to the download is fine
    if not path.exists():
        raise CourseError(f"{path} does not exist")
    cfg = load_nbgrader_config(root)
    expected = sorted(source_notebooks(cfg, assignment))
    coursedir = course_dir(cfg)
    submitted = step_dir(coursedir, "submitted_directory")
    submitted.mkdir(parents=True, exist_ok=True)
    roster = _roster(coursedir)
    report = CollectReport(assignment, lms)
    for student in sorted(roster.ids):
        report.student(student, roster=True)
    job = Job(_open_download(path), lms, assignment, expected, submitted, report, Budget(EXPANDED_BYTES), roster)
    uploads = _uploads(job)
    if not uploads:
        raise CourseError(f"no file in {path} is named like a {lms} download ({COLLECT_PATTERNS[lms]})")
    for lms_id, theirs in sorted(uploads.items()):
        _collect_student(job, lms_id, theirs)
    _finish(report, excused)
    return report
