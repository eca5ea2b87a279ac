"""Grades back to the LMS over LTI Advantage: Assignment and Grade Services (AGS 2.0), addressed through NRPS.

``tlcourse push-grades --assignment 00_warmup`` sends each student's *final* score — the gradebook's, manual
points included, after the late penalty decided as for the CSV export (:mod:`.export`) — to the LMS course's
line item for that assignment (created on the first push, found by ``resourceId`` after). The course's tool
registration is ``c.Tlcourse.lti`` in ``nbgrader_config.py`` (:class:`LtiTool`); the tool authenticates with an
RS256 client assertion signed by its private key (IMS Security Framework §4.1), asks only for the scopes it uses,
and reads the course's members (NRPS) to turn a student id into the platform's ``userId`` with the same rule as
the hub's login (:func:`tlcourse.lti.identity`).

A push is idempotent: the line item's current results are read first and a score equal to the one there is not
sent again; a comment is compared only with the one this tool last sent, so a teacher's comment in the LMS does
not by itself cause a re-send (a re-send — the score or our late rule changed — replaces it). What
was sent is remembered (``lms-pushed/<assignment>.json`` beside the autograded folder), so that a score that has
no value any more — a submission withheld after an earlier push, a grade reopened for manual grading — is
withdrawn when the LMS still shows the score we sent: it gets a score with no points, ``gradingProgress:
PendingManual`` and the reason as its comment, which clears the result and asks a grader to look. A score a
teacher typed into the LMS is never withdrawn (the ledger forgets a score once the LMS shows another), nor is one
pushed before the ledger existed. ``--dry-run`` reads (token, members, line item, results) and sends
nothing. Every student gets a line: sent, unchanged, withdrawn, kept empty (awaiting manual grading, withheld, …:
:data:`.scores.EMPTY_STATES`), or not in the LMS course.

Example:
    >>> LtiTool.from_config({"Tlcourse": {"lti": {"issuer": "https://canvas.example", "client_id": "1000",
    ...     "token_url": "https://canvas.example/login/oauth2/token", "key_file": "tool.pem",
    ...     "line_items": "https://canvas.example/api/lti/courses/7/line_items",
    ...     "members": "https://canvas.example/api/lti/courses/7/names_and_roles"}}}, root="/course").key_file
    '/course/tool.pem'
    >>> _under("https://moodle.example/mod/lti/services.php/2/lineitems/7/lineitem?type_id=1", "scores")
    'https://moodle.example/mod/lti/services.php/2/lineitems/7/lineitem/scores?type_id=1'
"""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tlcourse.grading.course import CourseError, course_dir, load_nbgrader_config, open_gradebook, step_dir
from tlcourse.grading.export import late_work, scores
from tlcourse.grading.scores import EMPTY_STATES, Score
from tlcourse.lti import IdentityError, identity, read_state, write_state

__all__ = ["LtiTool", "PushLine", "PushReport", "push_grades"]

SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MEDIA = {"lineitem": "application/vnd.ims.lis.v2.lineitem+json",
         "lineitems": "application/vnd.ims.lis.v2.lineitemcontainer+json",
         "results": "application/vnd.ims.lis.v2.resultcontainer+json",
         "score": "application/vnd.ims.lis.v1.score+json",
         "members": "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"}
TIMEOUT = 30


@dataclass(frozen=True)
class LtiTool:
    """The course's registration as an LTI 1.3 tool on its LMS (``c.Tlcourse.lti``)."""

    issuer: str
    client_id: str
    token_url: str
    key_file: str  # the tool's private RSA key (PEM); its public half is registered on the platform
    line_items: str  # the LMS course's line item container (a launch's AGS claim names it)
    members: str  # the LMS course's membership URL (a launch's NRPS claim names it)
    key_id: str = ""
    username_source: str = "email"
    username_prefix: str = ""
    email_domains: str = ""  # comma-separated, as the hub's TLCOURSE_LTI_EMAIL_DOMAINS (the email source needs it)

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(d.strip().lower() for d in self.email_domains.split(",") if d.strip())

    @classmethod
    def from_config(cls, cfg: Any, root: str | os.PathLike[str] | None = None) -> LtiTool:
        raw = dict(cfg.get("Tlcourse", {}).get("lti", {}) or {})
        missing = [k for k in ("issuer", "client_id", "token_url", "key_file", "line_items", "members") if not raw.get(k)]
        if missing:
            raise CourseError(f"c.Tlcourse.lti needs {missing} in nbgrader_config.py (INSTRUCTORS.md, LTI 1.3)")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise CourseError(f"c.Tlcourse.lti has unknown keys {sorted(unknown)}")
        key = Path(os.path.expanduser(str(raw["key_file"])))
        raw["key_file"] = str(key if key.is_absolute() or root is None else Path(root) / key)
        return cls(**{k: ",".join(v) if isinstance(v, list | tuple | set) else str(v) for k, v in raw.items()})

    def assertion(self, now: float | None = None) -> str:
        """A fresh client assertion: RS256, ``iss`` = ``sub`` = client id, ``aud`` = token URL, 5 minutes."""
        import jwt

        try:
            key = Path(self.key_file).read_bytes()
        except OSError as exc:
            raise CourseError(f"the tool's private key {self.key_file}: {exc.strerror}") from None
        issued = int(now if now is not None else time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "iat": issued,
                  "exp": issued + 300, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.key_id} if self.key_id else None)


@dataclass
class _Client:
    """Requests with the bearer token of the scopes asked for."""

    tool: LtiTool
    scopes: tuple[str, ...]
    session: Any = None
    token: str = ""

    def __post_init__(self) -> None:
        import requests

        self.session = self.session or requests.Session()
        answer = self.session.post(self.tool.token_url, timeout=TIMEOUT, data={
            "grant_type": "client_credentials", "scope": " ".join(self.scopes), "client_assertion": self.tool.assertion(),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
        self.token = self._json(answer, "the access token")["access_token"]

    def _json(self, answer: Any, what: str) -> Any:
        if answer.status_code >= 400:
            raise CourseError(f"the LMS refused {what}: HTTP {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else {}

    def checked(self, url: str) -> str:
        """``url`` if it is on the LMS the course configured (scheme and host of its line items): the bearer token
        goes nowhere else, whatever URL an answer names."""
        mine, theirs = urllib.parse.urlsplit(self.tool.line_items), urllib.parse.urlsplit(str(url))
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            raise CourseError(f"the LMS named a URL on another site ({url!r}); not sending the token there")
        return str(url)

    def get(self, url: str, media: str, what: str, **params: str) -> list | dict:
        """The answer; for a list spread over pages (``Link: <…>; rel="next"``), every page's items."""
        pages: list = []
        while url:
            answer = self.session.get(self.checked(url), params=params, timeout=TIMEOUT,
                                      headers={"Authorization": f"Bearer {self.token}", "Accept": MEDIA[media]})
            body = self._json(answer, what)
            if not isinstance(body, list) and media != "members":
                return body
            pages += body if isinstance(body, list) else [body]
            url, params = answer.links.get("next", {}).get("url", ""), {}
        if media == "members":
            return {"members": [m for page in pages for m in page.get("members", [])]}
        return pages

    def post(self, url: str, media: str, body: dict, what: str) -> Any:
        url = self.checked(url)
        answer = self.session.post(url, json=body, timeout=TIMEOUT, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": MEDIA[media], "Accept": "application/json"})
        return self._json(answer, what)


@dataclass(frozen=True)
class PushLine:
    student: str
    user_id: str
    score: str  # as sent (or as it would be), or empty
    action: str  # sent | would send | unchanged | withdrawn: … | would withdraw: … | kept empty: … | not in the LMS


@dataclass
class PushReport:
    assignment: str
    line_item: str
    lines: list[PushLine] = field(default_factory=list)
    dry_run: bool = False
    members_refused: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(line.action.startswith(action) for line in self.lines)

    def summary(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        withdraw = "would withdraw" if self.dry_run else "withdrawn"
        return (f"{self.count(verb)} {verb}, {self.count('unchanged')} unchanged, {self.count(withdraw)} {withdraw}, "
                f"{self.count('kept empty')} kept empty, {self.count('not in the LMS')} not in the LMS course · "
                f"line item {self.line_item}")

    def table(self) -> str:
        width = max([len(line.student) for line in self.lines] + [7])
        rows = [f"{'student':<{width}}  {'score':>6}  action"]
        rows += [f"{line.student:<{width}}  {line.score:>6}  {line.action}" for line in self.lines]
        rows += [f"(LMS member without a course name: {why})" for why in self.members_refused]
        return "\n".join(rows)


def _member_ids(client: _Client, tool: LtiTool) -> tuple[dict[str, str], list[str]]:
    """NRPS members as {course user name: platform userId}, and the members that make no course name. A name that
    two members make is nobody's: a score sent to either could be the other's."""
    found: dict[str, list[str]] = {}
    refused = []
    for member in client.get(tool.members, "members", "the course's members").get("members", []):
        if str(member.get("status", "Active")) != "Active":
            continue
        try:
            name = identity(member, tool.username_source, prefix=tool.username_prefix, member=True,
                            domains=tool.domains).name
            found.setdefault(name, []).append(str(member["user_id"]))
        except (IdentityError, KeyError) as exc:
            refused.append(str(exc))
    refused += [f"{name!r} is {len(ids)} LMS members: none is sent a score" for name, ids in found.items()
                if len(ids) > 1]
    return {name: ids[0] for name, ids in found.items() if len(ids) == 1}, refused


def _under(item_id: str, leaf: str) -> str:
    """``<line item>/<leaf>``, the leaf in the path before any query (Moodle's ids carry ``?type_id=…``)."""
    parts = urllib.parse.urlsplit(item_id)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + leaf))


def _line_item(client: _Client, tool: LtiTool, assignment: str, maximum: float, create: bool) -> dict | None:
    """The assignment's line item (``resourceId`` = the assignment), created when missing unless a dry run."""
    items = client.get(tool.line_items, "lineitems", "the line items", resource_id=assignment)
    items = [i for i in items if i.get("resourceId") == assignment]
    if len(items) > 1:
        raise CourseError(f"the LMS course has {len(items)} line items for {assignment}; delete the extra ones")
    if items:
        if float(items[0].get("scoreMaximum", 0)) != maximum:
            raise CourseError(f"the LMS line item of {assignment} is out of {items[0].get('scoreMaximum')} points, "
                              f"the gradebook's {maximum:g}: change it in the LMS first")
        return items[0]
    if not create:
        return None
    return client.post(tool.line_items, "lineitem", {"label": assignment, "scoreMaximum": maximum,
                                                      "resourceId": assignment, "tag": "tlcourse"},
                       f"a line item for {assignment}")


def _score_body(row: Score, user_id: str, now: datetime) -> dict:
    """The AGS score for ``row``: its final points, or — with none — a withdrawal awaiting a grader."""
    body = {"userId": user_id, "activityProgress": "Completed" if row.submitted else "Initialized",
            "gradingProgress": "FullyGraded", "timestamp": now.isoformat(timespec="milliseconds")}
    if row.final is None:
        return {**body, "gradingProgress": "PendingManual", "comment": EMPTY_STATES[row.state]}
    body |= {"scoreGiven": row.final, "scoreMaximum": row.max_score}
    if row.rule:
        body["comment"] = row.rule  # the late rule that applied, in words
    return body


def _decide(row: Score, user_id: str, result: dict | None, pushed: dict | None) -> str:
    """What a push does for ``row``: ``send``, ``withdraw``, ``unchanged``, ``keep`` (empty) or ``absent`` (not a
    member). ``result`` is the LMS's, ``pushed`` what this tool last sent there (:class:`_Ledger`): only a score
    the LMS still shows as we sent it is withdrawn — never one a teacher typed into the LMS — and a comment is
    re-sent only when ours changed (one the teacher wrote is left alone)."""
    shown = None if result is None else result.get("resultScore")
    if row.final is None:
        ours = user_id and pushed is not None and shown is not None and shown == pushed["score"]
        return "withdraw" if ours else "keep"
    if not user_id:
        return "absent"
    same_max = result is None or result.get("resultMaximum") in (None, row.max_score)
    same_rule = pushed is None or pushed["comment"] == (row.rule or "")
    return "unchanged" if shown == row.final and same_max and same_rule else "send"


@dataclass
class _Ledger:
    """What this tool last sent to one line item, per LMS user (``lms-pushed/<assignment>.json`` beside the
    autograded folder); a new line item starts a new ledger."""

    path: Path
    line_item: str
    users: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, line_item: str) -> _Ledger:
        saved = read_state(path)
        return cls(path, line_item, saved.get("users", {}) if saved.get("line_item") == line_item else {})

    def save(self) -> None:
        write_state(self.path, {"line_item": self.line_item, "users": self.users})


def _gradebook_rows(cfg: Any, assignment: str, now: datetime) -> list[Score]:
    coursedir = course_dir(cfg)
    late = late_work(cfg, coursedir, now=now)
    with open_gradebook(coursedir) as gb:
        rows = list(scores(gb, [assignment], late))
    if not rows:
        raise CourseError(f"no gradebook rows for {assignment}: is it graded, and is the roster imported?")
    return rows


def push_grades(assignment: str, *, root: str | os.PathLike[str] | None = None, dry_run: bool = False,
                now: datetime | None = None, session: Any = None) -> PushReport:
    """Send the assignment's final scores to the LMS (see the module docstring); return what happened to each."""
    cfg = load_nbgrader_config(root)
    tool = LtiTool.from_config(cfg, cfg.CourseDirectory.root)
    now = now or datetime.now(UTC)
    rows = _gradebook_rows(cfg, assignment, now)
    client = _Client(tool, (SCOPE + "lineitem", SCOPE + "result.readonly", SCOPE + "score", NRPS_SCOPE), session)
    members, refused = _member_ids(client, tool)
    item = _line_item(client, tool, assignment, rows[0].max_score, create=not dry_run)
    results = {} if item is None else {
        str(r.get("userId")): r for r in client.get(_under(item["id"], "results"), "results", "the current results")}
    report = PushReport(assignment, item["id"] if item else "(to be created)", dry_run=dry_run,
                        members_refused=refused)
    ledger = _Ledger.load(step_dir(course_dir(cfg), "autograded_directory").parent / "lms-pushed" /
                          f"{assignment}.json", item["id"] if item else "")
    try:
        for row in rows:
            report.lines.append(_push_one(client, item, row, members, results, ledger, now, dry_run))
    finally:
        if not dry_run:  # what was sent before a failure is remembered too
            ledger.save()
    return report


#: decision -> (the line's words, in a dry run, after doing it); ``{why}`` is why a score is empty
_WORDS = {"send": ("would send", "sent"), "withdraw": ("would withdraw: {why}", "withdrawn: {why}"),
          "unchanged": ("unchanged", "unchanged"), "keep": ("kept empty: {why}", "kept empty: {why}"),
          "absent": ("not in the LMS course", "not in the LMS course")}


def _push_one(client: _Client, item: dict | None, row: Score, members: dict[str, str],
              results: dict[str, dict], ledger: _Ledger, now: datetime, dry_run: bool) -> PushLine:
    user_id = members.get(row.student_id, "")
    result, pushed = results.get(user_id), ledger.users.get(user_id)
    decision = _decide(row, user_id, result, pushed)
    why = EMPTY_STATES[row.state] if row.final is None else ""
    if not dry_run and pushed is not None and (result or {}).get("resultScore") != pushed["score"]:
        ledger.users.pop(user_id)  # the LMS shows another score now (a teacher's): no longer ours to withdraw
    if decision in ("send", "withdraw") and not dry_run:
        client.post(_under(item["id"], "scores"), "score", _score_body(row, user_id, now),
                    f"{row.student_id}'s score")
        ledger.users.pop(user_id, None)
        if decision == "send":
            ledger.users[user_id] = {"score": row.final, "max": row.max_score, "comment": row.rule or ""}
    return PushLine(row.student_id, user_id if decision != "absent" else "", row.cell,
                    _WORDS[decision][not dry_run].format(why=why))
