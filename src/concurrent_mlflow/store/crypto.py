"""Encryption at rest for credentials in the store (cluster kubeconfigs): Fernet, keyed per installation.

The key is `CONCURRENT_SECRET_KEY` (a Fernet key; "new,old" to rotate) or else `<data dir>/secret.key`, made
on first use with mode 0600. A database dump alone therefore never yields a credential. Several servers
sharing one PostgreSQL store must share the key: set CONCURRENT_SECRET_KEY on each.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from concurrent_mlflow.errors import SecretKeyError
from concurrent_mlflow.settings import PRIVATE_FILE, private_dir, tighten

KEY_ENV = "CONCURRENT_SECRET_KEY"
KEY_FILE = "secret.key"


@dataclass(frozen=True)
class Cipher:
    """Encrypts with the first key, decrypts with any; `where` names the key's origin for error messages."""

    fernet: MultiFernet
    where: str
    keys: int

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.fernet.encrypt(plaintext)

    def decrypt(self, token: bytes, what: str) -> bytes:
        """`what` names the secret ("the credentials of cluster 'prod'") so the error says what is lost."""
        try:
            return self.fernet.decrypt(token)
        except InvalidToken:
            raise SecretKeyError(
                f"Cannot decrypt {what}: the secret key in use ({self.where}) is not the one they were "
                f"encrypted with. Restore the original key (set {KEY_ENV}, or put the old {KEY_FILE} back), "
                f'or to rotate keep the old one as a second key ({KEY_ENV}="NEW,OLD") and run '
                "`concurrent cluster rotate-key`; otherwise register the credentials again."
            ) from None

    def rotate(self, token: bytes, what: str) -> bytes:
        """Re-encrypt under the first key (after a key rotation)."""
        try:
            return self.fernet.rotate(token)
        except InvalidToken:
            self.decrypt(token, what)  # raises the message that explains it
            raise


def load_cipher(home: Path) -> Cipher:
    """The cipher for this installation: from the environment, else the data dir's key file (created once)."""
    configured = os.environ.get(KEY_ENV, "").strip()
    if configured:
        return Cipher(_fernets(configured.split(","), KEY_ENV), KEY_ENV, len(configured.split(",")))
    path = home / KEY_FILE
    return Cipher(_fernets([_read_or_create(path)], str(path)), str(path), 1)


def _fernets(keys: list[str], where: str) -> MultiFernet:
    fernets = []
    for index, key in enumerate(keys):
        try:
            fernets.append(Fernet(key.strip().encode()))
        except (ValueError, TypeError):
            which = f"key {index + 1} of {where}" if len(keys) > 1 else where
            # Never echo the value: it may be a real key with a typo.
            raise SecretKeyError(
                f"{which} is not a Fernet key (32 bytes, url-safe base64). Make one with: "
                'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None
    return MultiFernet(fernets)


def _read_or_create(path: Path) -> str:
    """Read the key file, or create it atomically: first writer wins, others read the winner's key."""
    if not path.exists():
        _create_key_file(path)
    tighten(path, PRIVATE_FILE)  # a key file left readable by others (copied, restored) is made private
    return path.read_text(encoding="ascii").strip()


def _create_key_file(path: Path) -> None:
    """Write the key to a private temporary file, then hard-link it into place.

    `link` fails if the name exists, so two processes starting at once never overwrite each other's key, and
    nobody reads a half-written file (the name appears only once the content is complete)."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as sink:
            sink.write(Fernet.generate_key().decode() + "\n")
            sink.flush()
            os.fsync(sink.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
