"""Grades back to the LMS over LTI 1.3 (AGS), against a local platform that checks what a real one checks.

The gradebook is written as autograde and the formgrader leave it (no notebook runs: see test_lms_roundtrip);
the platform (tests/support/lti_platform.py) verifies the tool's signed client assertion, the scopes, the media
types and every score payload, and keeps what it received.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from grading.test_lms_roundtrip import FEATURES, WARMUP, _grade, _root, _submitted
from support.lti_platform import Member, Platform, new_key, pem

from tlcourse.grading.ags import push_grades
from tlcourse.grading.cli import main
from tlcourse.grading.course import CourseError, course_dir, load_nbgrader_config, open_gradebook
from tlcourse.lti import IdentityError, identity

pytestmark = pytest.mark.filterwarnings("ignore:Object of type:Warning")  # nbgrader's add_submission
NOW = datetime(2026, 12, 4, tzinfo=UTC)
MEMBERS = [Member("u-jane", "jane@uni.example", "Jane Smith"), Member("u-john", "john@uni.example", "John Doe"),
           Member("u-ann", "ann@uni.example", "Ann Absent"), Member("u-fay", "fay@uni.example", "Fay Fox"),
           Member("u-prof", "prof@uni.example", "Pat Prof", role="instructor"),
           Member("u-odd", "Odd Name!@uni.example", "Odd"),
           Member("u-jane-gmail", "jane@gmail.com", "Not Jane"),  # another domain: never jane
           Member("u-zoe1", "zoe@uni.example", "Zoe One"), Member("u-zoe2", "ZOE@uni.example", "Zoe Two")]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course whose warm-up is graded: jane on time (8/8), john 34 h late (6/8, two started days at 10 %), ann
    absent (0 after the due date), fay awaiting manual grading, zoe graded but not in the LMS course. Made once;
    each test works on a copy."""
    root = _root(tmp_path_factory.mktemp("graded"))
    coursedir = course_dir(load_nbgrader_config(root))
    with open_gradebook(coursedir) as gb:
        for sid in ("jane", "john", "ann", "fay", "zoe"):
            gb.update_or_create_student(sid)
    _grade(root, {"jane": (6, 2), "john": (4, 2), "fay": (6, None), "zoe": (5, 1)})
    _submitted(root, "jane", **{"timestamp.txt": "2026-11-15 20:00:00.000000 UTC"})
    _submitted(root, "john", **{"timestamp.txt": "2026-11-17 09:59:00.000000 UTC"})
    _submitted(root, "zoe", **{"timestamp.txt": "2026-11-15 20:00:00.000000 UTC"})
    return root


@pytest.fixture
def lms(graded: Path, tmp_path: Path) -> tuple[Platform, Path]:
    """A platform with the course's tool registered, and a copy of the graded course that knows it."""
    tool_key = new_key()
    platform = Platform(client_id="tool-1000", deployment_id="dep-1", redirect_uris=[],
                        tool_public_key=tool_key.public_key(), members=list(MEMBERS)).start()
    root = Path(shutil.copytree(graded, tmp_path / "root", symlinks=True))
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text().replace(str(graded), str(root)) + "c.Tlcourse.lti = " + repr({
        "issuer": platform.issuer, "client_id": platform.client_id, "token_url": platform.endpoint("token"),
        "key_file": "lti_tool.pem", "key_id": "tool-key-1", "line_items": platform.line_items_url,
        "members": platform.members_url, "email_domains": ["uni.example"]}) + "\n")
    (root / "lti_tool.pem").write_bytes(pem(tool_key))
    yield platform, root
    platform.stop()


def _scores(platform: Platform) -> dict[str, float]:
    return {s["body"]["userId"]: s["body"]["scoreGiven"] for s in platform.scores}


def test_push_sends_final_scores_once(lms: tuple[Platform, Path]) -> None:
    platform, root = lms
    dry = push_grades(WARMUP, root=root, dry_run=True, now=NOW)
    assert platform.line_items == {} and platform.scores == [], "a dry run changes nothing on the platform"
    assert dry.count("would send") == 3 and dry.line_item == "(to be created)"

    first = push_grades(WARMUP, root=root, now=NOW)
    assert platform.errors == [], platform.errors
    (item,) = platform.line_items.values()
    assert (item["resourceId"], item["scoreMaximum"], item["label"]) == (WARMUP, 8.0, WARMUP)
    # final scores: manual points in, the late penalty taken from the final score, 0 for no submission after due
    assert _scores(platform) == {"u-jane": 8.0, "u-john": 4.8, "u-ann": 0.0}
    john = next(s["body"] for s in platform.scores if s["body"]["userId"] == "u-john")
    assert john["gradingProgress"] == "FullyGraded" and john["activityProgress"] == "Completed"
    assert "late" in john["comment"] and john["scoreMaximum"] == 8.0
    ann = next(s["body"] for s in platform.scores if s["body"]["userId"] == "u-ann")
    assert ann["activityProgress"] == "Initialized"
    actions = {line.student: line.action for line in first.lines}
    assert actions["fay"] == "kept empty: awaiting manual grading" and actions["zoe"] == "not in the LMS course"
    assert any("Odd Name!" in why for why in first.members_refused), "a member with no course name is said"
    assert any("gmail.com" in why for why in first.members_refused), "another domain's jane is not jane"
    assert any("'zoe' is 2 LMS members" in why for why in first.members_refused), "an ambiguous name gets nothing"
    assert len(platform.members) > 3, "the members came over several pages (Link: rel=next)"

    # the client assertion was signed by the tool's key for the token URL, with only the scopes it uses
    assert all(t["assertion"]["aud"] == platform.endpoint("token") for t in platform.tokens)
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in platform.tokens[0]["scopes"]

    again = push_grades(WARMUP, root=root, now=NOW)
    assert len(platform.scores) == 3 and len(platform.line_items) == 1, "a second push sends nothing new"
    assert again.count("unchanged") == 3

    # manual grading finished: only fay's score goes, into the same line item
    coursedir = course_dir(load_nbgrader_config(root))
    with open_gradebook(coursedir) as gb:
        written = gb.find_grade("written", WARMUP, WARMUP, "fay")
        written.manual_score, written.needs_manual_grade = 1, False
        gb.db.commit()
    third = push_grades(WARMUP, root=root, now=NOW)
    assert third.count("sent") == 1 and _scores(platform)["u-fay"] == 7.0 and len(platform.line_items) == 1


def test_push_withdraws_only_what_it_sent_and_keeps_the_lms_own(lms: tuple[Platform, Path]) -> None:
    """A score that has no value any more (jane's grade reopened for manual grading after the push) is withdrawn
    from the LMS, once — but a score a teacher typed into the LMS (fay's, while her grade awaits manual grading) is
    not, nor is a comment the teacher wrote; our own comment is re-sent when it changed."""
    platform, root = lms
    push_grades(WARMUP, root=root, now=NOW)
    (item,) = platform.line_items
    platform.scores.append({"item": item, "body": {  # the teacher types a score for fay into the LMS
        "userId": "u-fay", "scoreGiven": 5.0, "scoreMaximum": 8.0, "activityProgress": "Completed",
        "gradingProgress": "FullyGraded", "timestamp": "2026-11-20T10:00:00.000+00:00"}})
    coursedir = course_dir(load_nbgrader_config(root))
    with open_gradebook(coursedir) as gb:
        gb.find_grade("written", WARMUP, WARMUP, "jane").needs_manual_grade = True
        gb.db.commit()
    dry = push_grades(WARMUP, root=root, dry_run=True, now=NOW)
    actions = {line.student: line.action for line in dry.lines}
    assert actions["jane"] == "would withdraw: awaiting manual grading", actions
    assert actions["fay"] == "kept empty: awaiting manual grading", "the teacher's own score stays"
    assert len(platform.scores) == 4, "a dry run sends nothing"
    pushed = push_grades(WARMUP, root=root, now=NOW)
    assert {line.student: line.action for line in pushed.lines}["jane"] == "withdrawn: awaiting manual grading"
    assert "1 withdrawn" in pushed.summary() and pushed.count("sent") == 0 and len(platform.scores) == 5
    body = platform.scores[-1]["body"]
    assert body["userId"] == "u-jane" and "scoreGiven" not in body and body["gradingProgress"] == "PendingManual"
    assert body["comment"] == "awaiting manual grading" and platform.errors == []
    assert _scores_now(platform) == {"u-john": 4.8, "u-ann": 0.0, "u-fay": 5.0}, "jane's is cleared, fay's kept"
    assert push_grades(WARMUP, root=root, now=NOW).count("kept empty") == 2 and len(platform.scores) == 5

    john = next(s for s in reversed(platform.scores) if s["body"]["userId"] == "u-john")
    john["body"]["comment"] = "well argued — see me about question 2"  # the teacher's comment in the LMS
    assert push_grades(WARMUP, root=root, now=NOW).count("sent") == 0, "a teacher's comment causes no re-send"
    (ledger_path,) = root.rglob("lms-pushed/00_warmup.json")
    ledger = json.loads(ledger_path.read_text())
    assert ledger["line_item"] == platform.line_items[item]["id"] and ledger["users"]["u-john"]["score"] == 4.8 and "u-jane" not in ledger["users"]
    ledger["users"]["u-john"]["comment"] = "an older late rule"  # the rule we sent then differs from today's
    ledger_path.write_text(json.dumps(ledger))
    resent = push_grades(WARMUP, root=root, now=NOW)
    assert [line.student for line in resent.lines if line.action == "sent"] == ["john"]
    assert "late" in platform.scores[-1]["body"]["comment"]
    assert push_grades(WARMUP, root=root, now=NOW).count("sent") == 0

    # a teacher types another score for john; later john's grade is reopened: the LMS's score is the teacher's,
    # kept — and the ledger forgets ours, so the teacher typing our old value back is not withdrawn either
    def teacher_types(score: float) -> None:
        platform.scores.append({"item": item, "body": {"userId": "u-john", "scoreGiven": score, "scoreMaximum": 8.0,
                                                        "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                                                        "timestamp": "2026-11-21T10:00:00.000+00:00"}})
    teacher_types(5.0)
    with open_gradebook(coursedir) as gb:
        gb.find_grade("written", WARMUP, WARMUP, "john").needs_manual_grade = True
        gb.db.commit()
    assert {line.student: line.action for line in push_grades(WARMUP, root=root, now=NOW).lines}["john"] == (
        "kept empty: awaiting manual grading")
    teacher_types(4.8)
    kept = push_grades(WARMUP, root=root, now=NOW)
    assert kept.count("withdrawn") == 0 and _scores_now(platform)["u-john"] == 4.8


def _scores_now(platform: Platform) -> dict[str, float]:
    """Each user's current result on the one line item."""
    (item,) = platform.line_items
    users = {s["body"]["userId"] for s in platform.scores}
    return {u: r["scoreGiven"] for u in users if (r := platform.result(item, u)) and "scoreGiven" in r}


def test_push_refuses_what_it_cannot_do_right(lms: tuple[Platform, Path]) -> None:
    platform, root = lms
    push_grades(WARMUP, root=root, now=NOW)
    next(iter(platform.line_items.values()))["scoreMaximum"] = 10  # changed in the LMS
    with pytest.raises(CourseError, match="out of 10 points"):
        push_grades(WARMUP, root=root, now=NOW)
    with pytest.raises(CourseError, match="no gradebook rows"):
        push_grades("99_nothing", root=root, now=NOW)
    item = next(iter(platform.line_items.values()))
    item["scoreMaximum"], item["id"] = 8.0, "http://evil.example/line_items/1"  # an answer naming another site
    with pytest.raises(CourseError, match="another site"):
        push_grades(WARMUP, root=root, now=NOW)
    assert not any("evil" in e for e in platform.errors)
    (root / "lti_tool.pem").write_bytes(pem(new_key()))  # not the key the platform knows
    with pytest.raises(CourseError, match="refused the access token: HTTP 401"):
        push_grades(WARMUP, root=root, now=NOW)
    assert any("client assertion refused" in e for e in platform.errors)


def test_push_needs_the_tool_registration(tmp_path: Path) -> None:
    root = _root(tmp_path, extra='c.Tlcourse.lti = {"issuer": "https://lms.example"}\n')
    with pytest.raises(CourseError, match="c.Tlcourse.lti needs"):
        push_grades(WARMUP, root=root, now=NOW)
    root2 = _root(tmp_path / "two")
    assert main(["push-grades", "--assignment", WARMUP, "--dry-run", "--root", str(root2)]) == 2


def test_cli_push_and_dry_run(lms: tuple[Platform, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The command as an instructor types it (the parser and the command in this process: no second start of
    Python; the subprocess form of the CLI is tested by the other commands)."""
    platform, root = lms
    assert main(["push-grades", "--assignment", WARMUP, "--dry-run", "--root", str(root)]) == 0
    dry = capsys.readouterr().out
    assert "3 would send" in dry and platform.scores == []
    assert main(["push-grades", "--assignment", WARMUP, "--root", str(root)]) == 0
    done = capsys.readouterr()
    assert "3 sent" in done.out and "not in the LMS course" in done.out and len(platform.scores) == 3
    assert FEATURES not in done.out  # one assignment at a time
    assert main(["push-grades", "--assignment", WARMUP, "--root", str(root / "nowhere")]) == 2
    assert "tlcourse push-grades:" in capsys.readouterr().err


CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.mark.parametrize(("record", "source", "prefix", "member", "expected"), [
    ({"email": "Jane.Doe@UNI.example"}, "email", "", False, ("jane.doe", "student")),
    ({"sub": "8f2e", CLAIM + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"]}, "sub",
     "lti-", False, ("lti-8f2e", "instructor")),
    ({"sub": "x", CLAIM + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"],
      "email": "ta@uni.example"}, "email", "", False, ("ta", "instructor")),
    ({"user_id": "u1", "email": "bob@uni.example", "roles": ["Learner"]}, "email", "", True, ("bob", "student")),
    ({"user_id": "u1", "lis_person_sourcedid": "s1001", "roles": ["Instructor"]}, "sourcedid", "", True,
     ("s1001", "instructor")),
])
def test_identity_one_rule_for_login_and_push(record: dict, source: str, prefix: str, member: bool,
                                              expected: tuple[str, str]) -> None:
    who = identity(record, source, prefix=prefix, member=member, domains={"uni.example"})
    assert (who.name, who.role) == expected


@pytest.mark.parametrize(("record", "source"), [
    ({"email": "../root@x"}, "email"), ({"email": "a/b@x"}, "email"), ({"email": "root\n@x"}, "email"),
    ({"email": "-rf@x"}, "email"), ({"email": "=cmd|' /C calc'!A0@x"}, "email"), ({"sub": "8f2e"}, "sub"),
    ({"email": "a" * 40 + "@x"}, "email"), ({"email": "ünï@x"}, "email"), ({"email": "\u212aate@x"}, "email"),
    ({}, "sub"), ({"email": ""}, "email"),
])
def test_identity_refuses_names_that_are_not_course_users(record: dict, source: str) -> None:
    """Never rewritten into something safe (two rewrites could land on one account): refused, with the reason
    (the Kelvin sign would lower-case into a plain "kate")."""
    with pytest.raises(IdentityError, match="course user name"):
        identity(record, source, domains={"x"})
    with pytest.raises(IdentityError, match="unknown username source"):
        identity({"email": "a@x"}, "nickname")


def test_email_names_only_on_the_institutions_domains() -> None:
    """The local part alone would make jane@gmail.com the same account as jane@uni.example."""
    with pytest.raises(IdentityError, match="needs the institution's e-mail domains"):
        identity({"email": "jane@uni.example"}, "email")
    with pytest.raises(IdentityError, match="not on one of the course's domains"):
        identity({"email": "jane@gmail.com"}, "email", domains={"uni.example"})
    with pytest.raises(IdentityError, match="not on one of the course's domains"):
        identity({"email": "jane"}, "email", domains={"uni.example"})
    assert identity({"email": "jane@uni.example"}, "email", domains={"uni.example"}).name == "jane"
