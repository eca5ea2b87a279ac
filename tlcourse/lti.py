"""Who an LTI 1.3 launch is in the course: one rule, shared by the hub's login and the grade push.

An LMS (Canvas, Moodle, …) acting as an LTI 1.3 *platform* signs an ``id_token`` for every launch; the same
people appear in its Names and Role Provisioning Services (NRPS) list, which the grade push reads to address
scores. :func:`identity` turns either record into a course user: a **username** from one source of
:data:`USERNAME_SOURCES` (the e-mail's local part, the platform's opaque ``sub``, or the SIS id), a **role**
(``instructor`` for the LTI instructor and teaching-assistant roles and institution administrators, else
``student``) and the LMS course (**context**). A username must be a course id and a Unix login at once
(:data:`COURSE_USER`: ASCII lower-case letters, digits, ``.`` and ``-``, starting with a letter, at most 32):
anything else is refused with :class:`IdentityError`, never rewritten (two rewritten names could collide into one
account). The e-mail source drops the domain, so it is only accepted with the list of domains the institution
controls (``domains``): ``jane@uni.example`` and ``jane@gmail.com`` would otherwise be one account, and a student
who sets an instructor's local part on another domain would become them.

Example:
    >>> claims = {"sub": "8f2e", "email": "Jane.Doe@uni.example",
    ...           "https://purl.imsglobal.org/spec/lti/claim/roles":
    ...               ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
    ...           "https://purl.imsglobal.org/spec/lti/claim/context": {"id": "course-4401"}}
    >>> identity(claims, domains={"uni.example"})
    Identity(name='jane.doe', role='student', context='course-4401')
    >>> identity({"user_id": "8f2e", "roles": ["Instructor"]}, "sub", prefix="lti-", member=True).name
    'lti-8f2e'
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COURSE_USER", "INSTRUCTOR_ROLES", "USERNAME_SOURCES", "Identity", "IdentityError", "identity",
           "read_state", "write_state"]

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
LIS_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/lis"

#: A course user: a student id (folder names) and a Unix login (useradd) at once.
COURSE_USER = re.compile(r"[a-z][a-z0-9.-]{0,31}")

#: LTI roles that grade (LTI 1.3 §A.2): instructors, teaching assistants (a sub-role of Instructor), administrators.
#: NRPS lists may use the short forms ("Instructor"); both are accepted.
INSTRUCTOR_ROLES = frozenset({
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
    "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator",
    "Instructor", "TeachingAssistant",
})


class IdentityError(ValueError):
    """A launch or a member that cannot be a course user; the message says why and what to configure."""


#: Where a username comes from: source -> (read it from an id_token's claims, read it from an NRPS member).
USERNAME_SOURCES: dict[str, tuple[Callable[[Mapping[str, Any]], Any], Callable[[Mapping[str, Any]], Any]]] = {
    "email": (lambda c: c.get("email"), lambda m: m.get("email")),
    "sub": (lambda c: c.get("sub"), lambda m: m.get("user_id")),
    "sourcedid": (lambda c: (c.get(LIS_CLAIM) or {}).get("person_sourcedid"),
                  lambda m: m.get("lis_person_sourcedid")),
}


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # "instructor" | "student"
    context: str  # the LMS course's id ("" in an NRPS member: the list is already one course's)


def _from_email(raw: str, domains: frozenset[str] | set[str]) -> str:
    local, at, domain = raw.rpartition("@")
    if not domains:
        raise IdentityError("the e-mail username source needs the institution's e-mail domains (a name from any "
                            "domain could be anyone's): set them, or use the sub or sourcedid source")
    if not at or domain.lower() not in domains:
        raise IdentityError(f"the e-mail {raw!r} is not on one of the course's domains {sorted(domains)}")
    return local


def identity(record: Mapping[str, Any], source: str = "email", *, prefix: str = "", member: bool = False,
             domains: frozenset[str] | set[str] = frozenset()) -> Identity:
    """The course user of an id_token's claims (or, with ``member=True``, of an NRPS member record)."""
    if source not in USERNAME_SOURCES:
        raise IdentityError(f"unknown username source {source!r}; choose one of {sorted(USERNAME_SOURCES)}")
    raw = str(USERNAME_SOURCES[source][member](record) or "")
    if source == "email" and raw:
        raw = _from_email(raw, domains)
    name = f"{prefix}{raw.lower()}"  # as given: a space or a newline is refused, not trimmed; ASCII only (no
    if not raw or not raw.isascii() or not COURSE_USER.fullmatch(name):  # Kelvin sign folding into a "k")
        raise IdentityError(
            f"the {source} of this {'member' if member else 'launch'} ({raw!r}) does not make a course user name "
            f"({COURSE_USER.pattern}, prefix {prefix!r}); choose another username source or a prefix")
    roles = record.get("roles" if member else CLAIM + "roles") or []
    role = "instructor" if INSTRUCTOR_ROLES & set(roles) else "student"
    context = "" if member else str((record.get(CLAIM + "context") or {}).get("id", ""))
    return Identity(name, role, context)


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON state file of the LTI tool (the hub's bindings and roles, the grade push's ledger); ``{}`` if none."""
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else {}


def write_state(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` at once: a fresh 0600 file beside it (``mkstemp``), then a rename.

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_state(folder / "state.json", {"jane": "sub-1"})
        >>> read_state(folder / "state.json"), oct((folder / "state.json").stat().st_mode & 0o777)
        ({'jane': 'sub-1'}, '0o600')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
