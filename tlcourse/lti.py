"""Who an LTI 1.3 launch is in the course: one rule, shared by the hub's login and the grade push.

An LMS (Canvas, Moodle, …) acting as an LTI 1.3 *platform* signs an ``id_token`` for every launch; the same
people appear in its Names and Role Provisioning Services (NRPS) list, which the grade push reads to address
scores. :func:`identity` turns either record into a course user: a **username** from one source of
:data:`USERNAME_SOURCES` (the e-mail's local part, the platform's opaque ``sub``, or the SIS id), a **role**
(``instructor`` for the LTI instructor and teaching-assistant roles and institution administrators, else
``student``) and the LMS course (**context**). A username must be a course id and a Unix login at once
(:data:`COURSE_USER`: lower-case letters, digits, ``.`` and ``-``, starting with a letter, at most 32): anything
else is refused with :class:`IdentityError`, never rewritten (two rewritten names could collide into one account).

Example:
    >>> claims = {"sub": "8f2e", "email": "Jane.Doe@uni.example",
    ...           "https://purl.imsglobal.org/spec/lti/claim/roles":
    ...               ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
    ...           "https://purl.imsglobal.org/spec/lti/claim/context": {"id": "course-4401"}}
    >>> identity(claims)
    Identity(name='jane.doe', role='student', context='course-4401')
    >>> identity({"user_id": "8f2e", "roles": ["Instructor"]}, "sub", prefix="lti-", member=True).name
    'lti-8f2e'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["COURSE_USER", "INSTRUCTOR_ROLES", "USERNAME_SOURCES", "Identity", "IdentityError", "identity"]

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


def _local_part(value: Any) -> str:
    return str(value or "").partition("@")[0]


#: Where a username comes from: source -> (read it from an id_token's claims, read it from an NRPS member).
USERNAME_SOURCES: dict[str, tuple[Callable[[Mapping[str, Any]], Any], Callable[[Mapping[str, Any]], Any]]] = {
    "email": (lambda c: _local_part(c.get("email")), lambda m: _local_part(m.get("email"))),
    "sub": (lambda c: c.get("sub"), lambda m: m.get("user_id")),
    "sourcedid": (lambda c: (c.get(LIS_CLAIM) or {}).get("person_sourcedid"),
                  lambda m: m.get("lis_person_sourcedid")),
}


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # "instructor" | "student"
    context: str  # the LMS course's id ("" in an NRPS member: the list is already one course's)


def identity(record: Mapping[str, Any], source: str = "email", *, prefix: str = "", member: bool = False) -> Identity:
    """The course user of an id_token's claims (or, with ``member=True``, of an NRPS member record)."""
    if source not in USERNAME_SOURCES:
        raise IdentityError(f"unknown username source {source!r}; choose one of {sorted(USERNAME_SOURCES)}")
    raw = USERNAME_SOURCES[source][member](record)
    name = f"{prefix}{str(raw or '').lower()}"  # as given: a space or a newline is refused, not trimmed
    if not raw or not COURSE_USER.fullmatch(name):
        raise IdentityError(
            f"the {source} of this {'member' if member else 'launch'} ({raw!r}) does not make a course user name "
            f"({COURSE_USER.pattern}, prefix {prefix!r}); choose another username source or a prefix")
    roles = record.get("roles" if member else CLAIM + "roles") or []
    role = "instructor" if INSTRUCTOR_ROLES & set(roles) else "student"
    context = "" if member else str((record.get(CLAIM + "context") or {}).get("id", ""))
    return Identity(name, role, context)
