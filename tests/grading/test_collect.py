"""``tlcourse collect`` against real LMS download layouts and against students who attack it.

Every download is built here (small real zips and folders); the course root is a private copy with a roster of
three students (Canvas/Moodle/Blackboard user ids 1001-1003). Each attack must leave the other students collected
with their own work, write nothing outside ``submitted/``, and stop early (small files, capped reads).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import stat
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from support.course import WARMUP, make_course_root

from tlcourse.grading.cli import main
from tlcourse.grading.collect import COLLECT_PATTERNS, LMS_ORDER, CollectReport, collect, match_upload
from tlcourse.grading.course import CourseError
from tlcourse.grading.export import import_roster

collect_module = importlib.import_module("tlcourse.grading.collect")  # the package exports collect(), the function

ROSTER = "id,first_name,last_name,email,lms_user_id\njane,Jane,Smith,,1001\njohn,John,Doe,,1002\nann,Ann,Absent,,1003\n"
NB = f"{WARMUP}.ipynb"


def notebook(owner: str) -> bytes:
    """A valid notebook whose first cell says who wrote it."""
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"owner = {owner!r}")])).encode()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2027, 1, 15, 12, 0, 0)), data, compression)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(zip_bytes(members))
    return path


@pytest.fixture(scope="module")
def course_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("collect")
    root = make_course_root(base / "root")
    (base / "roster.csv").write_text(ROSTER)
    assert import_roster(base / "roster.csv", root) == ["jane", "john", "ann"]
    return root


@pytest.fixture
def root(course_root: Path) -> Path:
    """The course root with an empty submitted/ folder."""
    shutil.rmtree(course_root / "course" / "submitted", ignore_errors=True)
    return course_root


def owner_of(root: Path, student: str) -> str | None:
    """Whose notebook was collected as ``student`` (None: nothing)."""
    path = root / "course" / "submitted" / student / WARMUP / NB
    if not path.is_file():
        return None
    return nbformat.reads(path.read_text(), as_version=4).cells[0].source.split("'")[1]


def run(root: Path, download: Path, lms: str = "canvas", **kw: object) -> CollectReport:
    return collect(download, WARMUP, lms=lms, root=root, **kw)


def status(report: CollectReport) -> dict[str, str]:
    return {k: s.status for k, s in report.students.items()}


def assert_others_fine(root: Path, report: CollectReport, attacker: str = "john") -> None:
    """jane collected with her own work; nothing written outside submitted/ or as anyone but the uploader."""
    assert report.students["jane"].status == "collected", report.table()
    assert owner_of(root, "jane") == "jane", report.table()
    assert owner_of(root, "ann") is None, "ann handed nothing in"
    assert owner_of(root, attacker) in (None, attacker)
    submitted = root / "course" / "submitted"
    allowed = {"jane", "john", "ann"}
    assert {p.name for p in submitted.iterdir()} <= allowed, list(submitted.iterdir())
    strays = [p for p in root.rglob("*evil*")]
    assert not strays, strays


# ------------------------------------------------------------------------------------------------ real layouts
def test_patterns_and_orderings_cover_the_same_lms() -> None:
    assert set(COLLECT_PATTERNS) == set(LMS_ORDER) == {"canvas", "moodle", "blackboard"}


def test_canvas_flat_zip(root: Path, tmp_path: Path) -> None:
    download = write_zip(tmp_path / "submissions.zip", {
        f"smithjane_1001_5001_{NB}": notebook("jane"),
        f"doejohn_LATE_1002_5002_{WARMUP}-1.ipynb": notebook("john"),
        "doejohn_LATE_1002_5003_data.csv": b"a,b\n1,2\n",
    })
    report = run(root, download)
    assert status(report) == {"jane": "collected", "john": "collected", "ann": "missing"}, report.table()
    assert (owner_of(root, "jane"), owner_of(root, "john")) == ("jane", "john")
    side = json.loads((root / "course/submitted/john" / WARMUP / ".collect.json").read_text())
    assert side["lms"] == "canvas" and side["late_marker"] is True and side["source"].startswith("doejohn_LATE")
    assert side["file_time"].startswith("2027-01-15T12:00:00") and side["file_time"][19:] != ""  # has a zone
    assert json.loads((root / "course/submitted/jane" / WARMUP / ".collect.json").read_text())["late_marker"] is False
    assert not (root / "course/submitted/jane" / WARMUP / "timestamp.txt").exists()
    assert not report.ok and [s.student for s in report.problems] == ["ann"]
    assert run(root, download, excused=["ann"]).ok


def test_canvas_zipped_folder_three_levels_deep(root: Path, tmp_path: Path) -> None:
    """A student zips a folder on a Mac: the notebook is three folders down, next to __MACOSX and checkpoints."""
    theirs = zip_bytes({f"work/hw/{WARMUP}/{NB}": notebook("jane"),
                        f"__MACOSX/work/hw/{WARMUP}/._{NB}": b"\x00\x05\x16\x07",
                        f"work/hw/{WARMUP}/.ipynb_checkpoints/{WARMUP}-checkpoint.ipynb": notebook("old")})
    download = write_zip(tmp_path / "submissions.zip", {"smithjane_1001_5001_work.zip": theirs,
                                                         f"doejohn_1002_5002_{NB}": notebook("john")})
    report = run(root, download)
    assert (owner_of(root, "jane"), owner_of(root, "john")) == ("jane", "john"), report.table()


def test_a_single_notebook_with_another_name_is_filed_under_the_assignment(root: Path, tmp_path: Path) -> None:
    download = write_zip(tmp_path / "d.zip", {"smithjane_1001_5001_Jane Smith HW0.ipynb": notebook("jane")})
    report = run(root, download)
    assert owner_of(root, "jane") == "jane", report.table()


@pytest.mark.parametrize("folder", ["Jane Smith_1001_assignsubmission_file_", "Jane Smith_1001_assignsubmission_file"])
@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "unpacked"])
def test_moodle_folder_layouts(root: Path, tmp_path: Path, folder: str, as_zip: bool) -> None:
    """Moodle's "submissions in folders": one folder per student (3.x names end in ``_``; also without it)."""
    suffix = folder[len("Jane Smith_1001"):]
    members = {f"{folder}/{NB}": notebook("jane"),
               f"John Doe_1002{suffix}/sub/dir/{NB}": notebook("john"),
               "Ann Absent_1003_assignsubmission_onlinetext_/onlinetext.html": b"<p>sorry</p>"}
    download = write_zip(tmp_path / "moodle.zip", members)
    if not as_zip:
        with zipfile.ZipFile(download) as zf:
            zf.extractall(tmp_path / "unpacked")
        download = tmp_path / "unpacked"
    report = run(root, download, lms="moodle")
    assert (owner_of(root, "jane"), owner_of(root, "john")) == ("jane", "john"), report.table()
    assert report.students["ann"].status == "refused" and "no notebook" in report.students["ann"].reasons[0]
    assert json.loads((root / "course/submitted/jane" / WARMUP / ".collect.json").read_text())["source"] == folder


def test_moodle_file_layout(root: Path, tmp_path: Path) -> None:
    download = write_zip(tmp_path / "moodle.zip", {
        f"Jane Smith_1001_assignsubmission_file_{NB}": notebook("jane"),
        "John Doe_1002_assignsubmission_file_mywork.zip": zip_bytes({f"mywork/{NB}": notebook("john")})})
    report = run(root, download, lms="moodle")
    assert (owner_of(root, "jane"), owner_of(root, "john")) == ("jane", "john"), report.table()


def test_blackboard_keeps_the_latest_attempt(root: Path, tmp_path: Path) -> None:
    download = write_zip(tmp_path / "bb.zip", {
        f"{WARMUP}_1001_attempt_2027-01-14-09-00-00_{NB}": notebook("jane-old"),
        f"{WARMUP}_1001_attempt_2027-01-15-09-00-00_my work.ipynb": notebook("jane"),
        f"{WARMUP}_1001_attempt_2027-01-15-09-00-00.txt": b"Name: Jane Smith",
        f"{WARMUP}_1002_attempt_2027-01-15-10-00-00_{NB}": notebook("john"),
    })
    report = run(root, download, lms="blackboard")
    assert (owner_of(root, "jane"), owner_of(root, "john")) == ("jane", "john"), report.table()
    assert any("2027-01-14" in entry for entry, _ in report.skipped), report.skipped


def test_wrong_lms_is_an_error_not_an_empty_success(root: Path, tmp_path: Path) -> None:
    download = write_zip(tmp_path / "d.zip", {f"smithjane_1001_5001_{NB}": notebook("jane")})
    with pytest.raises(CourseError, match="no file"):
        run(root, download, lms="moodle")


# ------------------------------------------------------------------------------------------------ impersonation
IMPERSONATIONS: dict[str, tuple[str, dict[str, bytes]]] = {
    "victim-named file in own zip": ("canvas", {
        "doejohn_1002_5002_hw.zip": zip_bytes({f"smithjane_1001_9999_{NB}": notebook("john")})}),
    "victim-named LATE file in own zip": ("canvas", {
        "doejohn_1002_5002_hw.zip": zip_bytes({f"smithjane_LATE_1001_9999_{NB}": notebook("john")})}),
    "absent classmate's file in own zip": ("canvas", {
        "doejohn_1002_5002_hw.zip": zip_bytes({f"absentann_1003_9999_{NB}": notebook("john")})}),
    "victim's prefix in own file name": ("canvas", {
        f"doejohn_1002_5002_smithjane_LATE_1001_9999_{NB}": notebook("john")}),
    "victim-named file in own folder": ("moodle", {
        f"John Doe_1002_assignsubmission_file_/Jane Smith_1001_assignsubmission_file_{NB}": notebook("john")}),
    "victim's folder in own folder": ("moodle", {
        f"John Doe_1002_assignsubmission_file_/Jane Smith_1001_assignsubmission_file_/{NB}": notebook("john")}),
    "victim's attempt in own zip, later": ("blackboard", {
        f"{WARMUP}_1002_attempt_2027-01-15-10-00-00_x.zip": zip_bytes(
            {f"{WARMUP}_1001_attempt_2099-01-01-00-00-00_{NB}": notebook("john")})}),
}
VICTIM = {"canvas": f"smithjane_1001_5001_{NB}", "moodle": f"Jane Smith_1001_assignsubmission_file_/{NB}",
          "blackboard": f"{WARMUP}_1001_attempt_2027-01-15-09-00-00_{NB}"}


@pytest.mark.parametrize("case", sorted(IMPERSONATIONS))
@pytest.mark.parametrize("victim_present", [True, False], ids=["victim-uploaded", "victim-absent"])
def test_impersonation_files_stay_the_uploaders(root: Path, tmp_path: Path, case: str, victim_present: bool) -> None:
    lms, members = IMPERSONATIONS[case]
    members = {**members, **({VICTIM[lms]: notebook("jane")} if victim_present else {})}
    report = run(root, write_zip(tmp_path / "d.zip", members), lms=lms)
    assert owner_of(root, "john") == "john", report.table()
    assert owner_of(root, "jane") == ("jane" if victim_present else None), report.table()
    assert owner_of(root, "ann") is None
    assert report.students["jane"].status == ("collected" if victim_present else "missing")


# ------------------------------------------------------------------------------------------------ path escape
ESCAPES: dict[str, dict[str, bytes]] = {
    "dotdot member": {"../../evil.ipynb": notebook("john"), f"doejohn_1002_5002_{NB}": notebook("john")},
    "absolute member": {"/tmp/evil.ipynb": notebook("john")},
    "backslash dotdot": {"..\\..\\evil.ipynb": notebook("john")},
    "dotdot inside a matching folder": {f"doejohn_1002_5002_x/../../evil/{NB}": notebook("john")},
    "dotdot in own zip": {"doejohn_1002_5002_x.zip": zip_bytes({f"../../evil/{NB}": notebook("john")})},
    "absolute in own zip": {"doejohn_1002_5002_x.zip": zip_bytes({f"/evil/{NB}": notebook("john")})},
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_path_escapes_are_refused(root: Path, tmp_path: Path, case: str) -> None:
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), **ESCAPES[case]}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert any("'..'" in why or "absolute" in why for _, why in report.skipped), report.table()


@pytest.mark.parametrize("student_id", ["..", ".", "%2e%2e", "jane/../john"])
def test_unsafe_or_unknown_blackboard_ids_are_refused(root: Path, tmp_path: Path, student_id: str) -> None:
    members = {VICTIM["blackboard"]: notebook("jane"),
               f"{WARMUP}_{student_id}_attempt_2027-01-15-10-00-00_{NB}": notebook("evil")}
    report = run(root, write_zip(tmp_path / "d.zip", members), lms="blackboard")
    assert_others_fine(root, report)
    assert not (root / "course" / WARMUP).exists() and not (root / WARMUP).exists()


def test_a_roster_id_that_is_not_a_safe_name_is_refused(tmp_path: Path) -> None:
    """A gradebook edited by hand maps an LMS id to '../evil': refused, never a path."""
    from nbgrader.api import Gradebook

    root = make_course_root(tmp_path / "root")
    (tmp_path / "roster.csv").write_text(ROSTER)
    import_roster(tmp_path / "roster.csv", root)
    with Gradebook(f"sqlite:///{root / 'course' / 'gradebook.db'}", "tlcourse") as gb:
        gb.add_student("../evil", lms_user_id="6666")
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), f"evil_6666_5002_{NB}": notebook("evil")}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert owner_of(root, "jane") == "jane"
    assert report.students["(lms id 6666)"].status == "refused"
    assert "not a safe student id" in report.students["(lms id 6666)"].reasons[0]
    assert not list(tmp_path.rglob("evil")) and not (root / "course" / "evil").exists()


def test_an_lms_id_not_on_the_roster_is_refused(root: Path, tmp_path: Path) -> None:
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), f"mallory_7777_5002_{NB}": notebook("mallory")}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert report.students["(lms id 7777)"].reasons[0].startswith("not on the roster")
    assert sorted(p.name for p in (root / "course" / "submitted").iterdir()) == ["jane"]
    assert [s.student for s in report.problems] == ["john", "ann"] or {s.student for s in report.problems} == \
        {"john", "ann"}, "an unknown id is reported, but only roster students decide the exit status"


# ------------------------------------------------------------------------------------------------ overwrites
def test_canvas_reupload_keeps_the_latest_and_reports_the_other(root: Path, tmp_path: Path) -> None:
    members = {f"smithjane_1001_5003_{WARMUP}-1.ipynb": notebook("jane"),
               f"smithjane_1001_5001_{NB}": notebook("jane-old"), f"doejohn_1002_5002_{NB}": notebook("john")}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert owner_of(root, "jane") == "jane"
    assert any(entry.startswith("smithjane_1001_5001") for entry, _ in report.skipped), report.table()


def test_two_equally_late_notebooks_are_ambiguous_not_overwritten(root: Path, tmp_path: Path) -> None:
    members = {f"Jane Smith_1001_assignsubmission_file_{NB}": notebook("jane"),
               f"John Doe_1002_assignsubmission_file_/a/{NB}": notebook("john"),
               f"John Doe_1002_assignsubmission_file_/b/{NB}": notebook("john-b")}
    report = run(root, write_zip(tmp_path / "d.zip", members), lms="moodle")
    assert_others_fine(root, report)
    assert report.students["john"].status == "refused" and "ambiguous" in report.students["john"].reasons[0]
    assert owner_of(root, "john") is None


def test_duplicate_names_in_a_zip_are_refused(root: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr(f"smithjane_1001_5001_{NB}", notebook("jane"))
        zf.writestr(f"doejohn_1002_5002_{NB}", notebook("john"))
        zf.writestr(f"doejohn_1002_5002_{NB}", notebook("jane"))
    (tmp_path / "d.zip").write_bytes(buf.getvalue())
    report = run(root, tmp_path / "d.zip")
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None and "duplicate" in report.students["john"].reasons[0]


def test_a_link_planted_in_submitted_is_replaced_not_followed(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "outside.ipynb"
    target.write_text("precious")
    folder = root / "course" / "submitted" / "jane" / WARMUP
    folder.mkdir(parents=True)
    (folder / NB).symlink_to(target)
    report = run(root, write_zip(tmp_path / "d.zip", {f"smithjane_1001_5001_{NB}": notebook("jane")}))
    assert target.read_text() == "precious" and not (folder / NB).is_symlink()
    assert owner_of(root, "jane") == "jane", report.table()


def test_a_linked_student_folder_in_submitted_is_refused(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "course" / "submitted").mkdir(parents=True)
    (root / "course" / "submitted" / "john").symlink_to(elsewhere, target_is_directory=True)
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), f"doejohn_1002_5002_{NB}": notebook("john")}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert owner_of(root, "jane") == "jane" and not list(elsewhere.iterdir())
    assert report.students["john"].status == "refused" and "outside" in report.students["john"].reasons[0]


# ------------------------------------------------------------------------------------------------ bad members
def _patch_flag(data: bytes, name: bytes, bit: int) -> bytes:
    """Set a general-purpose flag bit of ``name`` in its local header and central directory entry."""
    out = bytearray(data)
    for sig, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = out.find(sig)
        while pos >= 0:
            if out[pos + name_at:pos + name_at + len(name)] == name:
                out[pos + flag_at] |= bit
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _corrupt(data: bytes, needle: bytes) -> bytes:
    pos = data.find(needle)
    assert pos >= 0
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


def _symlink_member(target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(NB)
        info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return buf.getvalue()


BAD_MEMBERS: dict[str, Callable[[], bytes]] = {
    "crc": lambda: _corrupt(zip_bytes({NB: notebook("john")}, zipfile.ZIP_STORED), b"owner"),
    "encrypted": lambda: _patch_flag(zip_bytes({NB: notebook("john")}), NB.encode(), 0x1),
    "symlink": lambda: _symlink_member("/etc/passwd"),
    "absolute": lambda: zip_bytes({f"/home/x/{NB}": notebook("john")}),
    "not a zip": lambda: b"PK\x03\x04 this is no zip",
    "truncated": lambda: zip_bytes({NB: notebook("john")})[:60],
}


@pytest.mark.parametrize("case", sorted(BAD_MEMBERS))
def test_a_bad_member_in_a_students_zip_is_reported_and_skipped(root: Path, tmp_path: Path, case: str) -> None:
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), "doejohn_1002_5002_hw.zip": BAD_MEMBERS[case]()}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None and report.students["john"].status == "refused", report.table()


def _download_with_bad_member(case: str) -> bytes:
    name = f"doejohn_1002_5002_{NB}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"smithjane_1001_5001_{NB}", notebook("jane"))
        info = zipfile.ZipInfo(name)
        if case == "symlink":
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if case == "symlink" else notebook("john"))
    patch = {"crc": lambda r: _corrupt(r, b"'john'"), "encrypted": lambda r: _patch_flag(r, name.encode(), 0x1),
             "symlink": lambda r: r}
    return patch[case](buf.getvalue())


@pytest.mark.parametrize("case", ["crc", "encrypted", "symlink"])
def test_a_bad_member_of_the_download_is_reported_and_skipped(root: Path, tmp_path: Path, case: str) -> None:
    """The same faults one level up: a member of the download itself (the download is not trusted either)."""
    (tmp_path / "d.zip").write_bytes(_download_with_bad_member(case))
    report = run(root, tmp_path / "d.zip")
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None and report.students["john"].status == "refused", report.table()


# ------------------------------------------------------------------------------------------------ zip bombs
def test_a_nested_archive_is_not_opened(root: Path, tmp_path: Path) -> None:
    inner = zip_bytes({NB: notebook("john")})
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"),
               "doejohn_1002_5002_hw.zip": zip_bytes({"inner.zip": inner, "more.tar.gz": b"x" * 10})}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None and "nested archive" in " ".join(report.students["john"].reasons)


def test_a_recursive_zip_is_read_one_level_only(root: Path, tmp_path: Path) -> None:
    """A zip that holds copies of itself (the quine idea): one level is read, then nothing more."""
    level = zip_bytes({NB: notebook("john")})
    for _ in range(6):
        level = zip_bytes({"again.zip": level, "again2.zip": level})
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), "doejohn_1002_5002_hw.zip": level}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None


@pytest.mark.parametrize("where", ["download", "student zip"])
def test_a_high_ratio_member_stops_early(root: Path, tmp_path: Path, where: str) -> None:
    bomb = b'{"cells": [], "x": "' + b" " * (30 * 1024 * 1024) + b'"}'  # 30 MB compresses to ~30 KB
    member = {f"doejohn_1002_5002_{NB}": bomb} if where == "download" else \
        {"doejohn_1002_5002_hw.zip": zip_bytes({NB: bomb})}
    download = write_zip(tmp_path / "d.zip", {f"smithjane_1001_5001_{NB}": notebook("jane"), **member})
    assert download.stat().st_size < 200_000
    start = time.perf_counter()
    report = run(root, download)
    assert time.perf_counter() - start < 5
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None
    assert any(k in " ".join(report.students["john"].reasons) for k in ("MiB limit", ":1")), report.table()


def test_a_ratio_bomb_under_the_size_cap_stops_while_reading(root: Path, tmp_path: Path) -> None:
    """5 MiB of blanks (under the notebook cap, declared honestly) compress 1000:1: the ratio cap stops it."""
    bomb = b'{"cells": [], "x": "' + b" " * (5 * 1024 * 1024) + b'"}'
    download = write_zip(tmp_path / "d.zip", {f"smithjane_1001_5001_{NB}": notebook("jane"),
                                               "doejohn_1002_5002_hw.zip": zip_bytes({NB: bomb})})
    report = run(root, download)
    assert_others_fine(root, report)
    assert "compressed more than 200:1" in " ".join(report.students["john"].reasons), report.table()


def test_a_lying_declared_size_is_not_trusted(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header says 100 bytes; the data inflates to 3 MB: the read stops at the cap or fails its CRC."""
    monkeypatch.setattr(collect_module, "NOTEBOOK_BYTES", 1024 * 1024)
    name = f"doejohn_1002_5002_{NB}".encode()
    raw = bytearray(zip_bytes({f"smithjane_1001_5001_{NB}": notebook("jane"), name.decode(): b"{" * 3_000_000}))
    for sig, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        pos = raw.find(sig)
        while pos >= 0:
            if raw[pos + name_at:pos + name_at + len(name)] == name:
                raw[pos + size_at:pos + size_at + 4] = struct.pack("<I", 100)
            pos = raw.find(sig, pos + 4)
    (tmp_path / "d.zip").write_bytes(bytes(raw))
    report = run(root, tmp_path / "d.zip")
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None and report.students["john"].status == "refused", report.table()
    assert any(k in report.students["john"].reasons[0] for k in ("was a lie", "CRC", "unreadable"))


def test_many_members_are_refused_before_parsing(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_module, "MAX_MEMBERS", 50)
    crowd = zip_bytes({f"f{i}.txt": b"" for i in range(60)} | {NB: notebook("john")}, zipfile.ZIP_STORED)
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), "doejohn_1002_5002_hw.zip": crowd}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert "61 members" in " ".join(report.students["john"].reasons), report.table()


def test_one_student_cannot_use_up_the_download_budget(root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Many large uploads by one student exhaust their own budget; the classmates after them are still read."""
    monkeypatch.setattr(collect_module, "STUDENT_BYTES", 2 * 1024 * 1024)
    filler = os.urandom(700 * 1024)  # incompressible: no ratio cap, only the budget stops it
    members = {f"doejohn_1002_{5002 + i}_hw{i}.zip": zip_bytes({f"f{i}.bin": filler}) for i in range(6)}
    members[f"smithjane_1001_5001_{NB}"] = notebook("jane")
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert "expanded past" in " ".join(report.students["john"].reasons), report.table()


# ------------------------------------------------------------------------------------------------ folder downloads
def _folder_download(tmp_path: Path) -> Path:
    folder = tmp_path / "download"
    (folder / "Jane Smith_1001_assignsubmission_file_").mkdir(parents=True)
    (folder / "Jane Smith_1001_assignsubmission_file_" / NB).write_bytes(notebook("jane"))
    (folder / "John Doe_1002_assignsubmission_file_").mkdir()
    return folder


def _hard_link(secret: Path, name: Path) -> None:
    secret.write_bytes(notebook("evil"))
    os.link(secret, name)


FOLDER_ATTACKS: dict[str, Callable[[Path, Path], None]] = {
    "symlink to a file": lambda john, tmp: (john / NB).symlink_to("/etc/passwd"),
    "symlink to the gradebook": lambda john, tmp: (john / NB).symlink_to(tmp / "root" / "course" / "gradebook.db"),
    "fifo": lambda john, tmp: os.mkfifo(john / NB),
    "hard link": lambda john, tmp: _hard_link(tmp / "secret.ipynb", john / NB),
    "linked folder": lambda john, tmp: (john / "sub").symlink_to(tmp, target_is_directory=True),
}


@pytest.mark.parametrize("case", sorted(FOLDER_ATTACKS))
def test_folder_download_links_fifos_and_hard_links(root: Path, tmp_path: Path, case: str) -> None:
    folder = _folder_download(tmp_path)
    FOLDER_ATTACKS[case](folder / "John Doe_1002_assignsubmission_file_", tmp_path)
    start = time.perf_counter()
    report = run(root, folder, lms="moodle")
    assert time.perf_counter() - start < 10, "a FIFO must never be opened for a blocking read"
    assert_others_fine(root, report)
    assert owner_of(root, "john") is None and report.students["john"].status == "refused", report.table()


def test_folder_download_top_level_link_and_linked_student_folder(root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    (folder / f"smithjane_1001_5001_{NB}").write_bytes(notebook("jane"))
    (folder / f"doejohn_1002_5002_{NB}").symlink_to(tmp_path / "root" / "course" / "gradebook.db")
    (tmp_path / "real").mkdir()
    (folder / "absentann_1003_5003_x").symlink_to(tmp_path / "real", target_is_directory=True)
    report = run(root, folder)
    assert_others_fine(root, report)
    assert report.students["john"].status == "refused" and "symbolic link" in report.students["john"].reasons[0]
    assert report.students["ann"].status == "refused" and "symbolic link" in report.students["ann"].reasons[0]


# ------------------------------------------------------------------------------------------------ invented attacks
def test_names_cannot_forge_lines_of_the_summary(root: Path, tmp_path: Path) -> None:
    """A student's file name with a newline and terminal escapes cannot add or hide lines in the summary."""
    evil = "doejohn_1002_5002_x\njane      collected\x1b[2K\x1b[1A.zip"
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"), evil: b"PK\x05\x06broken",
               "readme\x1b[31m.txt": b"hi"}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    table = report.table()
    assert "\x1b" not in table and [ln.split()[:2] for ln in table.splitlines() if ln.startswith("jane")] == \
        [["jane", "collected"]], table
    assert report.students["john"].status == "refused", "the odd name is still john's upload"


def test_a_notebook_that_is_not_a_notebook_is_refused(root: Path, tmp_path: Path) -> None:
    """An .ipynb that is really a zip (or anything but a notebook) is refused, never unpacked or written."""
    members = {f"smithjane_1001_5001_{NB}": notebook("jane"),
               f"doejohn_1002_5002_{NB}": zip_bytes({NB: notebook("john")})}
    report = run(root, write_zip(tmp_path / "d.zip", members))
    assert_others_fine(root, report)
    assert "not a valid notebook" in report.students["john"].reasons[0]


def test_match_upload_ignores_paths() -> None:
    assert match_upload(f"inner/smithjane_1001_5001_{NB}", "canvas") is None
    assert match_upload(f"smithjane_1001_5001_{NB}", "canvas").lms_id == "1001"


# ------------------------------------------------------------------------------------------------ the command
def test_cli_summary_exit_status_and_excuse(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    download = write_zip(tmp_path / "d.zip", {f"smithjane_1001_5001_{NB}": notebook("jane"),
                                               f"doejohn_1002_5002_{NB}": notebook("john")})
    args = ["collect", str(download), "--assignment", WARMUP, "--root", str(root)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "ann" in out and "missing" in out and "jane" in out
    assert main([*args, "--excuse", "ann"]) == 0
    assert "excused" in capsys.readouterr().out
    assert main([*args, "--lms", "moodle"]) == 2
