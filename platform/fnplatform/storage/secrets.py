"""Secrets at rest: each secret's values encrypted with AES-256-GCM in the registry database.

Only the key names, a revision number and times are stored in clear (``fnctl secrets ls`` shows
them); the values are one JSON object, encrypted with the secret's name as associated data, so a
ciphertext copied onto another secret's row does not decrypt.

``SecretCipher`` is the seam for a key service: ``LocalKeyCipher`` holds a master key from
``FN_SECRETS_KEY`` or a 0600 file under FN_HOME. A KMS / Secrets Manager backend implements the same
two methods (envelope encryption: a fresh data key per secret, wrapped by the service and stored
in the ciphertext) and is chosen in ``open_cipher``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import LargeBinary, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from fn import ConfigError, FnError

from .db import Base, Database, utcnow

log = logging.getLogger("fnplatform")
MASTER_KEY_ENV = "FN_SECRETS_KEY"
KEY_FILE = "secrets.key"
KEY_BYTES = 32
_FORMAT = b"\x01"  # the first byte of every ciphertext: lets a later format (or backend) be told apart
_NONCE_BYTES = 12


class SecretDecryptError(FnError):
    """A stored secret does not decrypt with this master key (it changed, or the row was tampered with)."""


class SecretCipher(Protocol):
    key_id: str  # names the key, never reveals it: stored beside each ciphertext so a changed key is reported

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes, context: bytes) -> bytes: ...

    def derive(self, label: bytes) -> bytes: ...


class LocalKeyCipher:
    """AES-256-GCM under one master key held by the control plane."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != KEY_BYTES:
            raise ConfigError(f"the secrets master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._derive_key = hmac.new(key, b"fn-derived-keys-v1", hashlib.sha256).digest()
        self.key_id = "local:" + hashlib.sha256(b"fn-secrets-key-id:" + key).hexdigest()[:10]

    def derive(self, label: bytes) -> bytes:
        """A key for another purpose (webhook signing), from the master key without revealing it."""
        return hmac.new(self._derive_key, label, hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, ciphertext: bytes, context: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if ciphertext[:1] != _FORMAT:
            raise SecretDecryptError("the stored ciphertext has an unknown format")
        nonce, sealed = ciphertext[1:1 + _NONCE_BYTES], ciphertext[1 + _NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, context)
        except InvalidTag:
            raise SecretDecryptError("the stored ciphertext does not decrypt with this master key") from None


def parse_master_key(text: str, source: str) -> bytes:
    """64 hex digits or base64 of 32 bytes; the error names *source*, never the text."""
    text = text.strip()
    decoders: list[Any] = [bytes.fromhex, lambda t: base64.b64decode(t, validate=True),
                           lambda t: base64.b64decode(t, altchars=b"-_", validate=True)]
    for decode in decoders:
        with contextlib.suppress(ValueError, binascii.Error):
            key: bytes = decode(text)
            if len(key) == KEY_BYTES:
                return key
    raise ConfigError(f"{source} is not a secrets master key: it must be {KEY_BYTES} random bytes as 64 hex digits "
                      f"(e.g. from: python -c \"import secrets; print(secrets.token_hex(32))\") or as base64")


def open_cipher(home: Path, environ: dict[str, str] | None = None) -> SecretCipher:
    """The cipher for this control plane: ``FN_SECRETS_KEY`` if set, else FN_HOME's key file (made once).

    The caller removes ``FN_SECRETS_KEY`` from its environment afterwards, so that processes it starts
    (a local Ray's workers, the replicas) do not inherit it (``control/server.py`` does)."""
    env = os.environ if environ is None else environ
    configured = env.get(MASTER_KEY_ENV, "")
    if configured:
        return LocalKeyCipher(parse_master_key(configured, MASTER_KEY_ENV))
    return LocalKeyCipher(load_or_create_key_file(home / KEY_FILE))


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, creating it first if missing: 0600, owned by this user, never through a link."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    with contextlib.suppress(FileNotFoundError):
        return _read_key_file(path)
    # Written whole under a private temporary name, then linked into place: a reader never sees a half-written
    # key, and of two processes creating it at once one wins and the other reads the winner's.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(KEY_BYTES).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path, follow_symlinks=False)
            log.warning("generated the secrets master key %s: back it up with the registry database (without it no "
                        "secret can be read), or set %s instead", path, MASTER_KEY_ENV)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigError(f"cannot open the secrets key file {path} ({exc.strerror}); it must be a regular file, "
                          f"not a link") from None
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ConfigError(f"the secrets key file {path} must be a regular file owned by this user with mode 0600 "
                              f"(it is {stat.filemode(info.st_mode)}); fix it with 'chmod 600 {path}'")
        return parse_master_key(handle.read(), f"the secrets key file {path}")


class _Secret(Base):
    __tablename__ = "secrets"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    keys: Mapped[str] = mapped_column(Text)  # a JSON list of the key names: shown by 'fnctl secrets ls'
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class SecretRecord:
    """A secret without its values."""

    name: str
    keys: tuple[str, ...]
    revision: int
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "keys": list(self.keys), "revision": self.revision,
                "created_at": self.created_at.isoformat() + "Z", "updated_at": self.updated_at.isoformat() + "Z"}


def _record(row: _Secret) -> SecretRecord:
    return SecretRecord(name=row.name, keys=tuple(json.loads(row.keys)), revision=row.revision,
                        created_at=row.created_at, updated_at=row.updated_at)


class SecretStore(Database):
    """Secrets in the registry database. Without a cipher it reads names, keys and revisions only (the
    deployer needs just the revisions, for the version of each function that uses a secret)."""

    def __init__(self, url: str, cipher: SecretCipher | None = None) -> None:
        super().__init__(url)
        self._cipher_or_none = cipher

    @property
    def cipher(self) -> SecretCipher:
        return self._cipher

    @property
    def _cipher(self) -> SecretCipher:
        if self._cipher_or_none is None:
            raise ConfigError("this secret store was opened without a master key; it can list secrets, not read them")
        return self._cipher_or_none

    def put(self, name: str, values: dict[str, str]) -> tuple[SecretRecord, bool]:
        """Replace *name*'s values; returns its record and whether anything changed (same values: no new revision)."""
        try:
            return self._put(name, values)
        except IntegrityError:  # a concurrent first set of the same name won the insert: update it instead
            return self._put(name, values)

    def _put(self, name: str, values: dict[str, str]) -> tuple[SecretRecord, bool]:
        plaintext = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
        with self._session() as session:
            row = session.get(_Secret, name, with_for_update=True)
            if row is not None and self._same(row, values):
                return _record(row), False
            sealed = self._cipher.encrypt(plaintext, name.encode())
            keys = json.dumps(sorted(values))
            if row is None:
                row = _Secret(name=name, keys=keys, ciphertext=sealed, key_id=self._cipher.key_id, revision=1)
                session.add(row)
            else:
                row.keys, row.ciphertext, row.key_id = keys, sealed, self._cipher.key_id
                row.revision += 1
                row.updated_at = utcnow()
            session.flush()
            return _record(row), True

    def _same(self, row: _Secret, values: dict[str, str]) -> bool:
        try:
            return self._decrypt(row) == values
        except SecretDecryptError:  # setting it again is the remedy for a secret that no longer decrypts
            return False

    def values(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        """The decrypted values of each of *names* that exists. Raises SecretDecryptError naming the secret."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        with self._session() as session:
            rows = list(session.scalars(select(_Secret).where(_Secret.name.in_(wanted))))
            return {row.name: self._decrypt(row) for row in rows}

    def _decrypt(self, row: _Secret) -> dict[str, str]:
        if row.key_id != self._cipher.key_id:
            raise SecretDecryptError(f"secret {row.name!r} was encrypted with master key {row.key_id}, but this control "
                                     f"plane has {self._cipher.key_id}; restore that {MASTER_KEY_ENV} (or {KEY_FILE}) "
                                     f"or set the secret again")
        try:
            values: dict[str, str] = json.loads(self._cipher.decrypt(row.ciphertext, row.name.encode()))
        except SecretDecryptError as exc:
            raise SecretDecryptError(f"secret {row.name!r}: {exc}; set it again with 'fnctl secrets set'") from None
        return values

    def record(self, name: str) -> SecretRecord | None:
        with self._session() as session:
            row = session.get(_Secret, name)
            return _record(row) if row is not None else None

    def records(self) -> list[SecretRecord]:
        with self._session() as session:
            return [_record(row) for row in session.scalars(select(_Secret).order_by(_Secret.name))]

    def foreign(self) -> list[str]:
        """Secrets encrypted under another master key than this store's: unreadable until that key is back."""
        with self._session() as session:
            return list(session.scalars(select(_Secret.name).where(_Secret.key_id != self._cipher.key_id)
                                        .order_by(_Secret.name)))

    def revisions(self, names: Iterable[str]) -> dict[str, int]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        with self._session() as session:
            rows = session.execute(select(_Secret.name, _Secret.revision).where(_Secret.name.in_(wanted)))
            return {name: revision for name, revision in rows}

    def delete(self, name: str) -> bool:
        return self._delete(_Secret, name)
