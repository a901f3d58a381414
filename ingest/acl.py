"""Mosquitto access control generated from the device registry: ``fumewatch mqtt-acl``.

Writes three files:

- ``OUT/passwd``: a Mosquitto 2 password file. Hashes are made here in exactly ``mosquitto_passwd``'s
  format (mosquitto 2.0's default ``sha512-pbkdf2``): ``user:$7$<iterations>$<base64 salt>$<base64 hash>``,
  PBKDF2-HMAC-SHA512 over the UTF-8 password with a 12-byte random salt, 64-byte output, standard base64
  with padding. Mosquitto reads the iteration count from each line.
- ``OUT/acl``: explicit ``user``/``topic`` rules, no ``pattern`` lines. A device account (named by its
  device_id) may only publish below ``{prefix}/{device_id}/``; it can read nothing. Service accounts get the
  rules of their role (``SERVICE_ROLES``).
- ``credentials.csv`` (``device_id,username,password``, mode 0600): the device passwords to hand to
  installers. Existing passwords are kept on every re-run unless ``--rotate`` names them (or all), so the
  command is idempotent; devices gone from the registry lose their accounts.

Service account passwords come from ``FUMEWATCH_ACL_<NAME>_PASSWORD`` (``FUMEWATCH_ACL_INGEST_PASSWORD``...)
when set (docker compose passes them from .env); otherwise one is generated once and kept in
``service-credentials.csv`` (``username,role,password``, mode 0600) beside ``credentials.csv``.

The files only take effect together with ``allow_anonymous false``, ``password_file`` and ``acl_file`` in
mosquitto.conf (see deploy/mosquitto/mosquitto.conf). After a re-run, SIGHUP makes Mosquitto reload both.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.registry import Registry

#: mosquitto_passwd 2.0's defaults (src: apps/mosquitto_passwd, PW_DEFAULT_ITERATIONS / SALT_LEN).
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64
PASSWORD_BYTES = 18  # 144 random bits -> 24 URL-safe characters (safe inside mqtt://user:pass@ URLs)

CREDENTIALS_COLUMNS = ("device_id", "username", "password")
SERVICE_CREDENTIALS_COLUMNS = ("username", "role", "password")


def _service_rules(prefix: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """ACL rules of each service role for topic prefix ``prefix`` (``(access, topic)`` pairs).

    Mosquitto 2.0's acl_file check grants every SUBSCRIBE (its SUBACK never refuses) and checks each
    message against the subscriber's ``read`` rules, with the message's own topic, when it delivers it. So
    a shared subscription ``$share/ingest/{prefix}/+/reading`` needs no ``$share`` rule: the read rules on
    the real topics below decide (tests/test_acl.py shows both on a real broker).
    """
    readings = (("read", f"{prefix}/+/reading"), ("read", f"{prefix}/+/hj212"))
    return {
        # fumewatch ingest: reads every device's readings.
        "ingest": readings,
        # fumewatch alerts: reads readings, publishes notices on {prefix}/alerts/{restaurant_id}.
        "alerts": (*readings, ("write", f"{prefix}/alerts/#")),
        # dashboards / operators: read everything under the prefix and the broker's $SYS statistics.
        "ops": (("read", f"{prefix}/#"), ("read", "$SYS/#")),
        # fumewatch hj212-gateway: publishes the frames of the TCP loggers it checked (MN bound per
        # connection, the registry's PW), HJ 212 only (docs/gateway.md).
        "gateway": (("write", f"{prefix}/+/hj212"),),
        # fumewatch simulate: publishes as every device. Demo and load tests only: never in production.
        "simulator": (("write", f"{prefix}/+/reading"), ("write", f"{prefix}/+/hj212")),
    }


SERVICE_ROLES = tuple(_service_rules("p"))
DEFAULT_SERVICE_ACCOUNTS = "ingest,alerts"
#: Topic segments under the prefix that belong to services: no device may be named like them.
RESERVED_DEVICE_IDS = frozenset({"alerts", "_unbound"})

_BAD_ID = re.compile(r"[/+#:\s\x00-\x1f\x7f]")


class AclError(ValueError):
    """The registry or the options cannot produce a safe ACL; the message says why."""


# ---------------------------------------------------------------------------------------------------------
# password hashing (mosquitto_passwd compatible)
# ---------------------------------------------------------------------------------------------------------


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``$7$<iterations>$<b64 salt>$<b64 hash>``: what ``mosquitto_passwd -H sha512-pbkdf2`` writes."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``encoded`` (a ``$7$`` or mosquitto 1.x ``$6$`` hash) matches ``password``."""
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations, salt, want = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, len(want))
        elif len(parts) == 4 and parts[1] == "6":
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode("utf-8") + salt).digest()
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


# ---------------------------------------------------------------------------------------------------------
# accounts
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccount:
    username: str
    role: str

    @property
    def env_name(self) -> str:
        return "FUMEWATCH_ACL_" + re.sub(r"[^A-Za-z0-9]", "_", self.username).upper() + "_PASSWORD"


def parse_service_accounts(spec: str) -> list[ServiceAccount]:
    """``"ingest,alerts,ingest2:ingest"``: names of roles, or ``name:role`` for another name."""
    out: list[ServiceAccount] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, role = item.partition(":")
        name, role = name.strip(), (role.strip() or name.strip())
        if role not in SERVICE_ROLES:
            raise AclError(
                f"service account {item!r}: unknown role {role!r}; roles: {', '.join(SERVICE_ROLES)}"
                " (write NAME:ROLE for another account name)"
            )
        _check_username(name, "service account")
        if any(a.username == name for a in out):
            raise AclError(f"service account {name!r} listed twice")
        out.append(ServiceAccount(name, role))
    return out


def _check_username(name: str, what: str) -> None:
    if not name:
        raise AclError(f"{what}: empty name")
    if _BAD_ID.search(name) or name.startswith("$") or len(name) > 128:
        raise AclError(
            f"{what} {name!r} cannot be an MQTT account and topic level: no '/', '+', '#', ':', "
            "whitespace or control characters, no leading '$', at most 128 characters"
        )


@dataclass
class AclResult:
    out_dir: Path
    passwd_path: Path
    acl_path: Path
    credentials_path: Path
    service_credentials_path: Path | None
    devices: int = 0
    new_passwords: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    kept: int = 0
    removed: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    service_passwords_from_env: list[str] = field(default_factory=list)


def generate(
    registry_path: str | Path,
    out_dir: str | Path,
    *,
    service_accounts: Sequence[ServiceAccount] | str = DEFAULT_SERVICE_ACCOUNTS,
    rotate: Iterable[str] | bool = (),
    topic_prefix: str = "fume/v1",
    credentials_path: str | Path | None = None,
    owner: tuple[int, int] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AclResult:
    """Write ``passwd``, ``acl`` and the credentials files; see the module docstring.

    ``rotate``: True for every account (device and generated service passwords), or device ids / service
    account names whose passwords are replaced. ``owner`` (uid, gid) chowns ``passwd`` and ``acl`` so that
    a broker running as another user can read them (needs the privilege to chown).
    """
    env = os.environ if environ is None else environ
    accounts = (
        parse_service_accounts(service_accounts) if isinstance(service_accounts, str) else service_accounts
    )
    prefix = topic_prefix.strip().strip("/")
    if not prefix or "+" in prefix or "#" in prefix:
        raise AclError(f"topic prefix {topic_prefix!r}: give a topic without wildcards, e.g. fume/v1")
    registry = Registry.load(registry_path)
    service_names = {a.username for a in accounts}
    for d in registry:
        _check_username(d.device_id, "device_id")
        if d.device_id in RESERVED_DEVICE_IDS or d.device_id in service_names:
            raise AclError(
                f"device_id {d.device_id!r} is reserved (a service account or the {prefix}/alerts topics)"
            )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    creds_path = Path(credentials_path) if credentials_path else out / "credentials.csv"
    creds_path.parent.mkdir(parents=True, exist_ok=True)
    svc_path = creds_path.parent / "service-credentials.csv"
    rotate_all = rotate is True
    rotate_ids = set() if isinstance(rotate, bool) else set(rotate)
    unknown = rotate_ids - {d.device_id for d in registry} - service_names
    if unknown:
        raise AclError(f"--rotate: no device or service account named {', '.join(sorted(unknown))}")

    result = AclResult(
        out_dir=out,
        passwd_path=out / "passwd",
        acl_path=out / "acl",
        credentials_path=creds_path,
        service_credentials_path=None,
        devices=len(registry),
    )

    # -- device passwords: keep what installers already have, unless rotated
    old = _read_csv(creds_path, "device_id", CREDENTIALS_COLUMNS)
    device_pw: dict[str, str] = {}
    for d in registry:
        have = old.get(d.device_id, {}).get("password", "")
        if have and not (rotate_all or d.device_id in rotate_ids):
            device_pw[d.device_id] = have
            result.kept += 1
        else:
            device_pw[d.device_id] = generate_password()
            (result.rotated if have else result.new_passwords).append(d.device_id)
    result.removed = sorted(set(old) - set(device_pw))

    # -- service passwords: environment first, else generated once and kept
    old_svc = _read_csv(svc_path, "username", SERVICE_CREDENTIALS_COLUMNS)
    service_pw: dict[str, str] = {}
    generated_svc: list[dict[str, str]] = []
    for a in accounts:
        from_env = env.get(a.env_name, "")
        if from_env:
            service_pw[a.username] = from_env
            result.service_passwords_from_env.append(a.username)
            continue
        have = old_svc.get(a.username, {}).get("password", "")
        if have and not (rotate_all or a.username in rotate_ids):
            pw = have
        else:
            pw = generate_password()
            if have:
                result.rotated.append(a.username)
        service_pw[a.username] = pw
        generated_svc.append({"username": a.username, "role": a.role, "password": pw})
    result.services = [a.username for a in accounts]

    # -- passwd: reuse a line whose hash still matches, so an unchanged account keeps an unchanged file
    old_hashes = _read_passwd(result.passwd_path)
    lines = []
    for user, pw in [*service_pw.items(), *device_pw.items()]:
        h = old_hashes.get(user)
        lines.append(f"{user}:{h if h and verify_password(pw, h) else hash_password(pw)}\n")
    _write_atomic(result.passwd_path, "".join(lines), 0o640, owner)
    _write_atomic(
        result.acl_path, acl_text(registry, accounts, prefix, source=Path(registry_path).name), 0o640, owner
    )

    rows = [
        {"device_id": d.device_id, "username": d.device_id, "password": device_pw[d.device_id]}
        for d in registry
    ]
    _write_atomic(creds_path, _csv_text(CREDENTIALS_COLUMNS, rows), 0o600, None)
    if generated_svc:
        _write_atomic(svc_path, _csv_text(SERVICE_CREDENTIALS_COLUMNS, generated_svc), 0o600, None)
        result.service_credentials_path = svc_path
    elif svc_path.exists():
        svc_path.unlink()  # every service password now comes from the environment
    return result


def acl_text(registry: Registry, accounts: Sequence[ServiceAccount], prefix: str, *, source: str = "") -> str:
    """The Mosquitto ACL file: explicit ``user``/``topic`` blocks (no ``pattern``), services first."""
    rules = _service_rules(prefix)
    source = _comment(source)
    out = [
        f"# Mosquitto ACL generated by `fumewatch mqtt-acl`{f' from {source}' if source else ''}.",
        "# Do not edit: re-run the command (it keeps existing passwords) and send the broker SIGHUP.",
        "# An account without rules here may do nothing; there are no rules for anonymous clients.",
        "# Retained messages: Mosquitto 2.0's ACL has no per-account retain rule; deploy/mosquitto/mosquitto.conf",
        "# refuses them for everyone (retain_available false) and caps packets (max_packet_size).",
        "",
        "# --- service accounts",
    ]
    for a in accounts:
        out.append(f"# role: {a.role}")
        out.append(f"user {a.username}")
        out += [f"topic {access} {topic}" for access, topic in rules[a.role]]
        out.append("")
    out.append(f"# --- devices: each may only publish below {prefix}/<its device_id>/ and read nothing")
    for d in registry:
        out.append(f"# restaurant {_comment(d.restaurant_id)}")
        out.append(f"user {d.device_id}")
        out.append(f"topic write {prefix}/{d.device_id}/#")
        out.append("")
    return "\n".join(out)


def _comment(text: str) -> str:
    """Registry text inside an ACL comment: a newline in it must not start a rule of its own."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:120]


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------


def _read_csv(path: Path, key: str, columns: Sequence[str]) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise AclError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
        return {
            row[key].strip(): {k: (v or "").strip() for k, v in row.items() if k}
            for row in reader
            if row.get(key)
        }


def _read_passwd(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            user, sep, h = line.partition(":")
            if sep and user:
                out[user] = h.strip()
    return out


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_atomic(path: Path, text: str, mode: int, owner: tuple[int, int] | None) -> None:
    """Write via a temp file in the same directory (created with ``mode``), then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            try:
                os.fchown(fd, *owner)
            except PermissionError:
                raise AclError(
                    f"--owner {owner[0]}:{owner[1]}: not allowed to chown {path} (run as root)"
                ) from None
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _parse_owner(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    uid, _, gid = value.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise AclError(f"--owner {value!r}: give numeric UID[:GID], e.g. 1883:1883") from None
