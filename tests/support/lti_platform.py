"""A local LTI 1.3 platform (an LMS as far as a tool can tell), written for the tests: its own RSA key, a JWKS on
loopback, signed id_tokens for launches, OAuth 2 client-credentials tokens, and Assignment and Grade Services.

It checks what a real platform checks, so that a tool that cuts a corner fails here:

* **launch** (OIDC third-party login, IMS Security Framework §5.1): ``/launch?user=…`` is the link a student
  clicks in the course; it auto-posts the login initiation (``iss``, ``login_hint``, ``target_link_uri``,
  ``lti_message_hint``, ``client_id``) to the tool. ``/authorize`` then refuses a request whose ``client_id``,
  ``redirect_uri`` (registered), ``response_type``, ``response_mode``, ``scope``, ``prompt``, ``login_hint`` or
  ``lti_message_hint`` is off, or that has no ``nonce``/``state``, and answers with an auto-posted form that carries
  the signed ``id_token`` and the state back to the redirect URI.
* **token** (§4.1, RFC 7523): the client assertion must be an RS256 JWT signed by the tool's registered key, with
  ``iss`` = ``sub`` = client id, ``aud`` = the token URL, a fresh ``exp``/``iat`` and a ``jti`` never seen before;
  only registered scopes are granted.
* **AGS** (Assignment and Grade Services 2.0): line items (list with ``resource_id``, create), results, scores —
  every call needs a bearer token with the scope it uses and the media type the spec names; a score must carry
  ``userId`` (a member), ``scoreGiven`` ≤ ``scoreMaximum``, ``activityProgress``, ``gradingProgress`` and a
  ``timestamp``; the latest score of a user is its result.
* **NRPS** (Names and Role Provisioning Services 2.0): the course's members with ``user_id``, ``email``, roles.

Everything it received is kept (``launches``, ``tokens``, ``scores``, ``errors``) for the tests to inspect.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
ROLES = {"learner": "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner",
         "instructor": "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"}
MEDIA = {"lineitem": "application/vnd.ims.lis.v2.lineitem+json",
         "lineitems": "application/vnd.ims.lis.v2.lineitemcontainer+json",
         "results": "application/vnd.ims.lis.v2.resultcontainer+json",
         "score": "application/vnd.ims.lis.v1.score+json",
         "members": "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"}


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Member:
    user_id: str  # the platform's opaque id: the id_token's ``sub``, an AGS score's ``userId``
    email: str
    name: str
    role: str = "learner"


@dataclass
class Platform:
    """One course (``context``) on one platform, with one registered tool."""

    client_id: str
    deployment_id: str
    redirect_uris: list[str]
    tool_public_key: Any = None  # the tool's key for client assertions (AGS)
    members: list[Member] = field(default_factory=list)
    context_id: str = "course-4401"
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = field(default_factory=lambda: secrets.token_hex(4))
    url: str = ""
    launches: list[dict] = field(default_factory=list)
    tokens: list[dict] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    line_items: dict[str, dict] = field(default_factory=dict)
    granted: dict[str, set[str]] = field(default_factory=dict)  # access token -> scopes
    seen_jti: set[str] = field(default_factory=set)
    tool_login_url: str = ""
    target_link_uri: str = ""
    forge: bool = False  # sign id_tokens with a key the JWKS does not hold (a forged launch)

    # ----------------------------------------------------------------------------------------------- URLs
    @property
    def issuer(self) -> str:
        return self.url

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"

    @property
    def line_items_url(self) -> str:
        return f"{self.url}/courses/{self.context_id}/line_items"

    @property
    def members_url(self) -> str:
        return f"{self.url}/courses/{self.context_id}/members"

    def member(self, user_id: str) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    def result(self, item_id: str, user_id: str) -> dict | None:
        """The latest score of a user on a line item (AGS: the result is the last score posted)."""
        posted = [s for s in self.scores if s["item"] == item_id and s["body"]["userId"] == user_id]
        return posted[-1]["body"] if posted else None

    # ----------------------------------------------------------------------------------------- id_token
    def id_token(self, member: Member, nonce: str, target: str, message_hint: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.client_id, "azp": self.client_id, "sub": member.user_id,
            "iat": now, "exp": now + 300, "nonce": nonce, "email": member.email, "name": member.name,
            LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id, LTI + "target_link_uri": target,
            LTI + "resource_link": {"id": message_hint, "title": "Lesson"},
            LTI + "roles": [ROLES[member.role]],
            LTI + "context": {"id": self.context_id, "label": "TL101", "title": "Transfer learning"},
            AGS_CLAIM: {"scope": [SCOPE + "lineitem", SCOPE + "result.readonly", SCOPE + "score"],
                        "lineitems": self.line_items_url},
            NRPS_CLAIM: {"context_memberships_url": self.members_url, "service_versions": ["2.0"]},
        }
        key = new_key() if self.forge else self.key
        return jwt.encode(claims, pem(key), algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    # ------------------------------------------------------------------------------------------- server
    def start(self) -> Platform:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _form(action: str, fields: dict[str, str]) -> bytes:
    """An auto-submitting POST form, as a platform answers a browser."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" '
            f'action="{html.escape(action)}">{inputs}<noscript><button>Continue</button></noscript></form>'
            "</body></html>").encode()


def _handler(platform: Platform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        # -------------------------------------------------------------------------------- plumbing
        def _send(self, status: int, body: bytes | dict | list, media: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if isinstance(body, dict | list) else body
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, status: int, why: str) -> None:
            platform.errors.append(f"{self.command} {self.path}: {why}")
            self._send(status, {"error": why})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorized(self, scope: str) -> bool:
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if scope not in platform.granted.get(token, set()):
                self._refuse(401, f"no token with scope {scope}")
                return False
            return True

        def _route(self) -> tuple[str, dict[str, str]]:
            parts = urllib.parse.urlsplit(self.path)
            return parts.path, dict(urllib.parse.parse_qsl(parts.query))

        # ------------------------------------------------------------------------------------ GET
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, query = self._route()
            if path == "/favicon.ico":  # a browser's own request, not the tool's
                self._send(204, b"", "image/x-icon")
            elif path == "/jwks":
                self._send(200, platform.jwks())
            elif path == "/launch":
                self._launch(query)
            elif path == "/authorize":
                self._authorize(query)
            elif path == f"/courses/{platform.context_id}/line_items":
                self._list_items(query)
            elif path.startswith(f"/courses/{platform.context_id}/line_items/") and path.endswith("/results"):
                self._results(path.split("/")[-2])
            elif path == f"/courses/{platform.context_id}/members":
                self._members(int(query.get("page", "1")))
            else:
                self._refuse(404, "no such page")

        def _launch(self, query: dict[str, str]) -> None:
            """The link in the course: the platform starts the OIDC login at the tool."""
            member = next((m for m in platform.members if m.email.split("@")[0] == query.get("user")), None)
            if member is None:
                return self._refuse(404, f"no member {query.get('user')!r}")
            hint = secrets.token_hex(8)
            platform.launches.append({"member": member.user_id, "hint": hint, "stage": "initiated"})
            self._send(200, _form(platform.tool_login_url, {
                "iss": platform.issuer, "login_hint": member.user_id, "lti_message_hint": hint,
                "client_id": platform.client_id, "lti_deployment_id": platform.deployment_id,
                "target_link_uri": query.get("target") or platform.target_link_uri}), "text/html")

        def _authorize(self, q: dict[str, str]) -> None:
            expected = {"client_id": platform.client_id, "response_type": "id_token", "response_mode": "form_post",
                        "scope": "openid", "prompt": "none"}
            wrong = [k for k, v in expected.items() if q.get(k) != v]
            if wrong:
                return self._refuse(400, f"authorization request with wrong {wrong}")
            if q.get("redirect_uri") not in platform.redirect_uris:
                return self._refuse(400, f"redirect_uri {q.get('redirect_uri')!r} is not registered")
            if not q.get("nonce") or not q.get("state"):
                return self._refuse(400, "no nonce or state")
            launch = next((x for x in platform.launches if x["hint"] == q.get("lti_message_hint")), None)
            member = platform.member(q.get("login_hint", ""))
            if launch is None or member is None or launch["member"] != member.user_id:
                return self._refuse(400, "login_hint / lti_message_hint do not match a launch")
            launch["stage"] = "authorized"
            token = platform.id_token(member, q["nonce"], platform.target_link_uri, launch["hint"])
            self._send(200, _form(q["redirect_uri"], {"id_token": token, "state": q["state"]}), "text/html")

        def _list_items(self, query: dict[str, str]) -> None:
            if not self._authorized(SCOPE + "lineitem"):
                return
            if MEDIA["lineitems"] not in (self.headers.get("Accept") or ""):
                return self._refuse(406, "Accept must name the line item container type")
            items = [i for i in platform.line_items.values()
                     if "resource_id" not in query or i["resourceId"] == query["resource_id"]]
            self._send(200, items, MEDIA["lineitems"])

        def _results(self, item_id: str) -> None:
            if not self._authorized(SCOPE + "result.readonly"):
                return
            if item_id not in platform.line_items:
                return self._refuse(404, "no such line item")
            users = {s["body"]["userId"] for s in platform.scores if s["item"] == item_id}
            rows = [{"id": f"{platform.line_items_url}/{item_id}/results/{u}", "userId": u,
                     "resultScore": r["scoreGiven"], "resultMaximum": r["scoreMaximum"],
                     "scoreOf": platform.line_items[item_id]["id"], **({"comment": r["comment"]} if "comment" in r else {})}
                    for u in sorted(users) if (r := platform.result(item_id, u)) and "scoreGiven" in r]
            self._send(200, rows, MEDIA["results"])

        def _members(self, page: int) -> None:
            """Three members a page, the next page in a ``Link`` header (NRPS §2.4.2)."""
            if not self._authorized(NRPS_SCOPE):
                return
            chunk = platform.members[3 * (page - 1):3 * page]
            more = len(platform.members) > 3 * page
            self._send(200, {"id": platform.members_url, "context": {"id": platform.context_id},
                             "members": [{"user_id": m.user_id, "email": m.email, "name": m.name,
                                          "status": "Active", "roles": [ROLES[m.role]]} for m in chunk]},
                       MEDIA["members"],
                       {"Link": f'<{platform.members_url}?page={page + 1}>; rel="next"'} if more else None)

        # ----------------------------------------------------------------------------------- POST
        def do_POST(self) -> None:  # noqa: N802
            path, _ = self._route()
            if path == "/token":
                self._token()
            elif path == f"/courses/{platform.context_id}/line_items":
                self._create_item()
            elif path.startswith(f"/courses/{platform.context_id}/line_items/") and path.endswith("/scores"):
                self._score(path.split("/")[-2])
            else:
                self._refuse(404, "no such endpoint")

        def _token(self) -> None:
            form = dict(urllib.parse.parse_qsl(self._body().decode()))
            if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != \
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return self._refuse(400, "grant_type / client_assertion_type")
            try:
                claims = jwt.decode(form.get("client_assertion", ""), platform.tool_public_key, algorithms=["RS256"],
                                    audience=platform.endpoint("token"),
                                    options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
            except jwt.PyJWTError as exc:
                return self._refuse(401, f"client assertion refused: {exc}")
            if claims["iss"] != platform.client_id or claims["sub"] != platform.client_id:
                return self._refuse(401, "client assertion iss/sub is not the client id")
            if claims["jti"] in platform.seen_jti or claims["exp"] - claims["iat"] > 3600:
                return self._refuse(401, "client assertion replayed or too long-lived")
            platform.seen_jti.add(claims["jti"])
            allowed = {SCOPE + "lineitem", SCOPE + "result.readonly", SCOPE + "score", NRPS_SCOPE}
            asked = set(form.get("scope", "").split())
            if not asked or not asked <= allowed:
                return self._refuse(400, f"scopes not registered: {sorted(asked - allowed)}")
            token = secrets.token_urlsafe(16)
            platform.granted[token] = asked
            platform.tokens.append({"scopes": sorted(asked), "assertion": claims})
            self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                             "scope": " ".join(sorted(asked))})

        def _create_item(self) -> None:
            if not self._authorized(SCOPE + "lineitem"):
                return
            if self.headers.get("Content-Type") != MEDIA["lineitem"]:
                return self._refuse(415, "Content-Type must be the line item type")
            body = json.loads(self._body())
            if not isinstance(body.get("scoreMaximum"), int | float) or body["scoreMaximum"] <= 0 or not body.get(
                    "label"):
                return self._refuse(400, "a line item needs a label and a positive scoreMaximum")
            item_id = str(len(platform.line_items) + 1)
            item = {**body, "id": f"{platform.line_items_url}/{item_id}?type_id={item_id}"}  # a query, as Moodle
            platform.line_items[item_id] = item
            self._send(201, item, MEDIA["lineitem"])

        def _score(self, item_id: str) -> None:
            if not self._authorized(SCOPE + "score"):
                return
            if self.headers.get("Content-Type") != MEDIA["score"]:
                return self._refuse(415, "Content-Type must be the score type")
            if item_id not in platform.line_items:
                return self._refuse(404, "no such line item")
            body = json.loads(self._body())
            problems = [k for k in ("userId", "activityProgress", "gradingProgress", "timestamp") if not body.get(k)]
            if platform.member(str(body.get("userId"))) is None:
                problems.append("userId is no member")
            if "scoreGiven" in body and not (0 <= body["scoreGiven"] <= body.get("scoreMaximum", -1)):
                problems.append("scoreGiven outside [0, scoreMaximum]")
            if problems:
                return self._refuse(400, f"score refused: {problems}")
            platform.scores.append({"item": item_id, "body": body})
            self._send(200, {}, "application/json")

    return Handler
