"""LTI 1.3 login for the one-server hub: a student clicks the lesson in the LMS and lands in it, with an account.

:class:`CourseLTI13Authenticator` is ``jupyterhub-ltiauthenticator``'s ``LTI13Authenticator`` (the OIDC launch,
the platform's signature, nonce and state checked there) with the course's own rules on top:

* only the launch callback logs anyone in: the hub's other routes that call an authenticator (the login form,
  the token API) get nothing, since their data was never signed by the platform;
* the username and role come from :func:`tlcourse.lti.identity` — the same rule the grade push uses to address
  scores (e-mails only on the institution's ``email_domains``); a launch whose name is not a safe course user is
  refused (403), never rewritten;
* a name stays bound to the platform's ``sub`` of its first launch (``bindings_file``): a later launch with another
  ``sub`` — a student who changed their e-mail to someone else's — is refused;
* only launches from the LMS courses in ``contexts`` (and, when listed, ``deployment_ids``) may log in; each
  LMS course is an nbgrader course (``contexts``: LMS course id -> course id, :mod:`tlcourse.hubcourses`);
* an existing Unix account is used only if it is a course account (uid >= 1000, in the students' or instructors'
  group): never ``root`` or a staff login; otherwise the first launch creates it (``useradd -m``, home 0700);
* a user's role in an LMS course is the role of their latest launch from it (``roles_file``, per LMS course, of
  the courses still served, forgotten when no launch renewed it for ``role_days``); for each they are in
  nbgrader's hub group of its nbgrader course (``nbgrader-<course>`` or ``formgrade-<course>``), so one hub
  serves several courses and nbgrader lists a student the assignments of their own courses (a listing, not
  access control: see :mod:`tlcourse.hubcourses`);
* an instructor (LTI instructor/TA role) in any of those courses is a hub admin and in the ``instructors`` hub
  and Unix groups (which own every course's exchange folders), else in ``students`` — re-synced at every launch:
  a TA who loses the role loses admin and the group at their next launch from that course, or when the role
  expires.

Example:
    >>> CourseLTI13Authenticator(username_source="sub", username_prefix="lti-").create_system_users
    True
"""

from __future__ import annotations

import grp
import pwd
import subprocess
import time
from typing import Any

from jupyterhub.auth import LocalAuthenticator
from ltiauthenticator.lti13.auth import LTI13Authenticator
from ltiauthenticator.lti13.handlers import LTI13CallbackHandler
from tornado import web
from traitlets import Bool, Dict, Int, Set, Unicode

from tlcourse.hubcourses import course_groups
from tlcourse.lti import IdentityError, identity, read_state, write_state

__all__ = ["CourseLTI13Authenticator"]


class CourseLTI13Authenticator(LocalAuthenticator, LTI13Authenticator):
    """LTI 1.3 launches to course users, with accounts made on first launch."""

    username_source = Unicode("email", config=True, help="tlcourse.lti.USERNAME_SOURCES key: email, sub, sourcedid")
    username_prefix = Unicode("", config=True, help="put before every username (e.g. 'lti-' with source 'sub')")
    email_domains = Set(Unicode(), config=True, help="the institution's e-mail domains (needed by the email source)")
    contexts = Dict(value_trait=Unicode(), config=True,
                    help="LMS course (context) id -> nbgrader course id: the only LMS courses whose launches log in")
    deployment_ids = Set(Unicode(), config=True, help="the tool's deployment ids on the platform (empty: any)")
    students_group = Unicode("tlcourse-students", config=True, help="Unix group of student accounts")
    instructors_group = Unicode("tlcourse-instructors", config=True, help="Unix group of instructor accounts")
    bindings_file = Unicode("lti-users.json", config=True, help="name -> platform sub of its first launch (root only)")
    roles_file = Unicode("lti-roles.json", config=True,
                         help="name -> {LMS course: role of the latest launch from it, and when} (root only)")
    role_days = Int(150, config=True, help="days a course role lasts without a launch renewing it (about a term)")
    create_system_users = Bool(True, config=True)
    manage_groups = Bool(True, config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._roles: dict[str, str] = {}  # username -> role of its latest launch (the hub sets groups after add_user)

    async def authenticate(self, handler: Any, data: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if not isinstance(handler, LTI13CallbackHandler):
            return None  # the login form or the token API: data nobody signed
        claims = data or {}
        try:
            who = identity(claims, self.username_source, prefix=self.username_prefix, domains=self.email_domains)
        except IdentityError as exc:
            raise web.HTTPError(403, str(exc)) from None
        if not self.contexts or who.context not in self.contexts:
            raise web.HTTPError(403, f"launches from LMS course {who.context!r} are not for this hub")
        deployment = str(claims.get("https://purl.imsglobal.org/spec/lti/claim/deployment_id", ""))
        if self.deployment_ids and deployment not in self.deployment_ids:
            raise web.HTTPError(403, f"deployment {deployment!r} of the tool is not this hub's")
        members = self._course_account(who.name)
        self._bind(who.name, str(claims.get("sub", "")))
        roles = self._record_role(who.name, who.context, who.role)
        role = "instructor" if "instructor" in roles.values() else "student"
        self._sync_group(who.name, role, members)
        self._roles[who.name] = role
        courses = course_groups((self.contexts[c], r) for c, r in roles.items())
        return {"name": who.name, "admin": role == "instructor", "groups": [f"{role}s", *courses],
                "auth_state": {"context": who.context, "sub": claims.get("sub", "")}}

    def check_allowed(self, username: str, authentication: dict[str, Any] | None = None) -> bool:
        return authentication is not None  # only authenticate's own models reach here (the callback's)

    def _bind(self, name: str, sub: str) -> None:
        """Keep ``name`` to the ``sub`` of its first launch; another ``sub`` for the same name is refused."""
        bound = read_state(self.bindings_file)
        if not sub:
            raise web.HTTPError(403, "the launch names no user (sub)")
        if bound.get(name, sub) != sub:
            raise web.HTTPError(403, f"the account {name!r} belongs to another LMS user")
        if name not in bound:
            write_state(self.bindings_file, {**bound, name: sub})

    def _record_role(self, name: str, context: str, role: str) -> dict[str, str]:
        """Remember ``role`` as ``name``'s in the LMS course ``context`` now; forget LMS courses no longer served
        and roles no launch renewed for ``role_days``; {LMS course: role} of theirs."""
        saved, now = read_state(self.roles_file), time.time()
        fresh = {c: r for c, r in saved.get(name, {}).items() if c in self.contexts and isinstance(r, dict)
                 and now - r.get("at", 0) <= self.role_days * 86400}
        mine = fresh | {context: {"role": role, "at": now}}
        write_state(self.roles_file, {**saved, name: mine})
        return {c: r["role"] for c, r in mine.items()}

    def _course_account(self, name: str) -> dict[str, bool] | None:
        """An existing account must be a course account (uid >= 1000, in a course group): its group memberships;
        ``None`` when there is no account yet (add_system_user makes it)."""
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            return None
        members = {g: name in _members(g) for g in (self.students_group, self.instructors_group)}
        if account.pw_uid < 1000 or not any(members.values()):
            raise web.HTTPError(403, f"{name!r} is a system account of this machine, not a course account")
        return members

    def _sync_group(self, name: str, role: str, members: dict[str, bool] | None) -> None:
        """The Unix group follows the role of this launch (a TA who loses the role loses the group)."""
        if members is None:
            return
        wanted = self.instructors_group if role == "instructor" else self.students_group
        for group, member in members.items():
            if member != (group == wanted):
                _run(["gpasswd", "-a" if group == wanted else "-d", name, group])

    def add_system_user(self, user: Any) -> None:
        """A new Unix account, in the Unix group of the role its launch carried."""
        group = self.instructors_group if self._roles.get(user.name) == "instructor" else self.students_group
        self.log.info("Creating user: %s in %s", user.name, group)
        _run(["useradd", "-m", "-K", "HOME_MODE=0700", "-G", group, user.name])


def _members(group: str) -> list[str]:
    try:
        return grp.getgrnam(group).gr_mem
    except KeyError:
        return []


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
