"""Capability links to the owner's page: signed, expiring, revocable, scoped to one restaurant.

A link is ``<public_url>/o/<token>``. The token is ``itsdangerous``'s URL-safe serialisation of
``[link_id, restaurant_id, expires_s]`` signed with HMAC-SHA256 under ``FUMEWATCH_OWNER_LINK_SECRET``
(salt ``fumewatch-owner-link-v1``): nobody without the secret can make one or change a byte of one.
A token is good only while all of these hold (:meth:`OwnerLinks.check`):

1. the signature verifies (else ``tampered``);
2. the ledger has the row ``link_id`` (``unknown``: a token signed with the secret but never issued) for the
   same restaurant (``mismatch``);
3. the row is not revoked (``revoked``) and its expiry has not passed (``expired``).

So revoking is one row update, effective at once for every process sharing the ledger, and a token tells
nothing: the page never shows another restaurant's data whatever the token says, since the restaurant
comes from the verified token and the row. The ledger holds the rows, never a token: a notice's link is
rebuilt from its row with the secret.

A notice's link id is derived from its notice key (keyed BLAKE2b under the secret), so a notice rendered
again after a crash carries the same link with the same expiry (:meth:`Ledger.issue_owner_link` keeps the
first row). Links issued by hand (``fumewatch owner-link issue``) get a random id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as _secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from alerts.owner.settings import MIN_SECRET_CHARS, OwnerSettings
from ingest.timeutil import now_ms

SALT = "fumewatch-owner-link-v1"
#: The page's path: ``<public_url>/o/<token>``.
PREFIX = "/o"
DAY_MS = 86_400_000
#: Why a token is refused (the page's message per reason: alerts/owner/texts.py).
TAMPERED, UNKNOWN, MISMATCH, REVOKED, EXPIRED = "tampered", "unknown", "mismatch", "revoked", "expired"


class OwnerLinkError(ValueError):
    """The owner-link settings are wrong (a one-line reason, never the secret)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a presented token comes to: ``ok`` with its link row, or the reason it is refused."""

    ok: bool
    reason: str = ""
    link: dict[str, Any] | None = None

    @property
    def restaurant_id(self) -> str:
        return self.link["restaurant_id"] if self.link else ""


class OwnerLinks:
    """Issue and check owner links against the ledger (``ledger``: an :class:`alerts.ledger.Ledger`)."""

    def __init__(self, ledger: Any, settings: OwnerSettings, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise OwnerLinkError(
                f"FUMEWATCH_OWNER_LINK_SECRET is shorter than {MIN_SECRET_CHARS} characters "
                '(make one with: python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        self.ledger = ledger
        self.settings = settings
        self._key = secret.encode("utf-8")
        self._s = URLSafeSerializer(secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})

    @classmethod
    def from_settings(cls, ledger: Any, settings: OwnerSettings) -> OwnerLinks | None:
        """The links of ``[owner]``: None when ``public_url`` is not set (notices then carry no link);
        :class:`OwnerLinkError` when it is set but the secret is missing or short."""
        if not settings.public_url:
            return None
        secret = settings.link_secret.get_secret_value()
        if not secret:
            raise OwnerLinkError(
                "[owner] public_url is set but FUMEWATCH_OWNER_LINK_SECRET is not: every process that sends "
                "notices or serves the owner's page needs the same secret in its environment"
            )
        return cls(ledger, settings, secret)

    # -- issuing ------------------------------------------------------------------------------------------

    def for_notice(self, restaurant_id: str, notice_key: str) -> tuple[str, int]:
        """(url, expires_ms) of the link an owner notice carries (the Notifier's ``owner_link``)."""
        digest = hashlib.blake2b(
            f"{restaurant_id}\n{notice_key}".encode(), key=self._key[:64], digest_size=12
        )
        link_id = "l" + base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
        row = self._issue(link_id, restaurant_id, notice_key, "system")
        return self.url(row), int(row["expires_ms"])

    def issue(self, restaurant_id: str, *, by: str, days: float | None = None) -> tuple[str, dict[str, Any]]:
        """A new link by hand (an operator re-sends a lost one): (url, row)."""
        link_id = "m" + _secrets.token_urlsafe(12)
        row = self._issue(link_id, restaurant_id, "", by, days)
        return self.url(row), row

    def _issue(
        self, link_id: str, restaurant_id: str, notice_key: str, by: str, days: float | None = None
    ) -> dict[str, Any]:
        now = now_ms()
        return self.ledger.issue_owner_link(
            link_id=link_id,
            restaurant_id=restaurant_id,
            notice_key=notice_key,
            issued_ms=now,
            expires_ms=now + int((days or self.settings.link_days) * DAY_MS),
            issued_by=by,
        )

    def token(self, row: dict[str, Any]) -> str:
        return self._s.dumps([row["link_id"], row["restaurant_id"], int(row["expires_ms"]) // 1000])

    def url(self, row: dict[str, Any]) -> str:
        return f"{self.settings.public_url}/o/{self.token(row)}"

    # -- checking -----------------------------------------------------------------------------------------

    def check(self, token: str, now: int | None = None) -> Verdict:
        """The :class:`Verdict` on ``token`` (see the module docstring for the order of the checks)."""
        try:
            link_id, restaurant_id, _expires_s = self._s.loads(token)
            if not isinstance(link_id, str) or not isinstance(restaurant_id, str):
                raise BadSignature("malformed payload")
        except (BadSignature, ValueError, TypeError):
            return Verdict(False, TAMPERED)
        row = self.ledger.get_owner_link(link_id)
        if row is None:
            return Verdict(False, UNKNOWN)
        if row["restaurant_id"] != restaurant_id:
            return Verdict(False, MISMATCH)
        if row.get("revoked_ms") is not None:
            return Verdict(False, REVOKED, row)
        if (now if now is not None else now_ms()) > int(row["expires_ms"]):
            return Verdict(False, EXPIRED, row)
        return Verdict(True, "", row)


def link_id_of(token: str) -> str:
    """The link id a token names, without checking it: for log lines, which never carry the token."""
    try:
        payload = token.split(".", 1)[0]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        value = json.loads(raw)
        return str(value[0])[:24] if isinstance(value, list) and value else "?"
    except Exception:  # noqa: BLE001 - whatever was sent, the log line gets no more than "?"
        return "?"


def log_path(path: str) -> str:
    """The access log's form of a path: ``/o/<token>...`` becomes ``/o/<link id>...``."""
    if not path.startswith(PREFIX + "/") or path.startswith(PREFIX + "/static/"):
        return path
    rest = path[len(PREFIX) + 1 :]
    token, sep, tail = rest.partition("/")
    return f"{PREFIX}/link:{link_id_of(token)}{sep}{tail}"
