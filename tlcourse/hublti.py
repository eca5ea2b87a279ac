"""LTI 1.3 login for the one-server hub: a student clicks the lesson in the LMS and lands in it, with an account.

:class:`CourseLTI13Authenticator` is ``jupyterhub-ltiauthenticator``'s ``LTI13Authenticator`` (the OIDC launch,
the platform's signature, nonce and state checked there) with the course's own rules on top:

* the username and role come from :func:`tlcourse.lti.identity` — the same rule the grade push uses to address
  scores; a launch whose name is not a safe course user is refused (403), never rewritten;
* only launches from the LMS courses listed in ``contexts`` may log in (several courses can share one platform;
  empty: any course of the registered tool);
* instructors (LTI instructor/TA roles) are hub admins and in the ``instructors`` hub group, students in
  ``students``; the groups are the hub's (``manage_groups``) and, for a new account, the Unix group it is made in;
* a Unix account is created at the first launch (``useradd -m``, home mode 0700), so nobody adds users by hand.

Example:
    >>> CourseLTI13Authenticator(username_source="sub", username_prefix="lti-").create_system_users
    True
"""

from __future__ import annotations

import subprocess
from typing import Any

from jupyterhub.auth import LocalAuthenticator
from ltiauthenticator.lti13.auth import LTI13Authenticator
from tornado import web
from traitlets import Bool, Set, Unicode

from tlcourse.lti import IdentityError, identity

__all__ = ["CourseLTI13Authenticator"]


class CourseLTI13Authenticator(LocalAuthenticator, LTI13Authenticator):
    """LTI 1.3 launches to course users, with accounts made on first launch."""

    username_source = Unicode("email", config=True, help="tlcourse.lti.USERNAME_SOURCES key: email, sub, sourcedid")
    username_prefix = Unicode("", config=True, help="put before every username (e.g. 'lti-' with source 'sub')")
    contexts = Set(Unicode(), config=True, help="LMS course (context) ids whose launches may log in; empty: any")
    students_group = Unicode("tlcourse-students", config=True, help="Unix group of new student accounts")
    instructors_group = Unicode("tlcourse-instructors", config=True, help="Unix group of new instructor accounts")
    create_system_users = Bool(True, config=True)
    manage_groups = Bool(True, config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._roles: dict[str, str] = {}  # username -> role of its latest launch (the hub sets groups after add_user)

    async def authenticate(self, handler: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
        claims = data or {}
        try:
            who = identity(claims, self.username_source, prefix=self.username_prefix)
        except IdentityError as exc:
            raise web.HTTPError(403, str(exc)) from None
        if self.contexts and who.context not in self.contexts:
            raise web.HTTPError(403, f"launches from LMS course {who.context!r} are not for this hub")
        self._roles[who.name] = who.role
        group = "instructors" if who.role == "instructor" else "students"
        return {"name": who.name, "admin": who.role == "instructor", "groups": [group],
                "auth_state": {"context": who.context, "sub": claims.get("sub", "")}}

    def check_allowed(self, username: str, authentication: dict[str, Any] | None = None) -> bool:
        return authentication is not None  # the platform vouched for the launch (and authenticate checked it)

    def add_system_user(self, user: Any) -> None:
        """A new Unix account, in the Unix group of the role its launch carried."""
        group = self.instructors_group if self._roles.get(user.name) == "instructor" else self.students_group
        cmd = ["useradd", "-m", "-K", "HOME_MODE=0700", "-G", group, user.name]
        self.log.info("Creating user: %s", " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"failed to create system user {user.name}: {done.stdout}{done.stderr}")
