"""An encrypted credential file shared by the task processes of a worker.

A login (a SAP Service Layer session, a ServiceTitan access token) is slow or throttled, so one
credential serves every task process of a worker. :class:`CredentialFile` is the file that
shares it; what the credential is, when it is fresh and how it is obtained stay with its hook.

* **Where.** ``<directory>/<key><suffix>``, where ``key`` is ``sha256`` of the identity parts
  joined with ``|`` (e.g. URL, company and user): one file per identity, whatever the secret.
  The directory is created 0700 when missing, the file is written 0600.
* **Encrypted.** The payload (a JSON object, plus a ``format`` field) is encrypted with Fernet
  under a key derived with scrypt (n=2**14, r=8, p=1, salt = the hex ``key``) from the
  identity's secret (a password, a client secret): only a holder of the secret can read it.
  Derived once per object; it costs ~50 ms on purpose (the file is worth a secret guess).
* **Written atomically**: a temporary file in the same directory, renamed over the old one.
* **Read tolerantly.** A file that is missing, unreadable, written under another secret,
  damaged, or of another format is absent (``None``): the caller obtains a new credential and
  overwrites it. Nothing in a file that cannot be decrypted is trusted.
* **One login at a time**: :meth:`CredentialFile.file_lock` is a cross-process file lock
  (``<key>.lock``, 0600) around "re-read, else obtain and store".
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from filelock import FileLock

T = TypeVar("T")

FORMAT = 1
"""The ``format`` field of every payload; a file of another format is absent."""

_log = logging.getLogger(__name__)


def derive_fernet(secret: str, salt: str) -> Fernet:
    """The Fernet of a cache file: a 32-byte scrypt (n=2**14, r=8, p=1) key of ``secret``, salted."""
    kdf = Scrypt(salt=salt.encode(), length=32, n=2**14, r=8, p=1)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(secret.encode("utf-8"))))


class CredentialFile:
    """The encrypted, cross-process file of one identity's credential.

    A cache subclasses it, names its file and messages with the class attributes below, and
    keeps its own ``load``/``store`` of typed credentials on top of :meth:`read` and :meth:`write`.

    :param directory: cache directory (created 0700 when missing).
    :param identity: what names the credential (e.g. URL, company, user); hashed into the file name.
    :param secret: the identity's secret; only used to derive the file's encryption key.
    """

    suffix = ".credential"
    """The file's extension, e.g. ``.session``."""
    what = "credential cache"
    """The file in log messages, e.g. ``SAP session cache``."""
    instead = "obtaining a new credential"
    """What the caller does when the file cannot be read, e.g. ``logging in``."""
    logger = _log
    """Where messages go (the subclass's module logger)."""
    secret_name = "secret"
    """The secret the file is encrypted with, in messages, e.g. ``password``."""

    def __init__(self, directory: Path | str, identity: Sequence[str], secret: str) -> None:
        self.directory = Path(directory)
        self.key = hashlib.sha256("|".join(identity).encode()).hexdigest()
        self.path = self.directory / f"{self.key}{self.suffix}"
        self.lock_path = self.directory / f"{self.key}.lock"
        self._secret = secret
        self._fernet: Fernet | None = None
        self._explained = False

    @property
    def fernet(self) -> Fernet:
        """The file's Fernet, derived from the secret on first use, then kept."""
        if self._fernet is None:
            self._fernet = derive_fernet(self._secret, self.key)
        return self._fernet

    def ensure_directory(self) -> None:
        """Create the cache directory, 0700, when it is missing."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def file_lock(self, timeout: float) -> FileLock:
        """A cross-process lock for this identity (raises ``filelock.Timeout`` after ``timeout`` s)."""
        self.ensure_directory()
        return FileLock(str(self.lock_path), timeout=timeout, mode=0o600)

    def read(self, parse: Callable[[dict[str, Any]], T | None]) -> tuple[T, float] | None:
        """The cached credential and the file's modification time, or ``None`` when absent.

        :param parse: builds the credential from the decrypted payload (``None``, or raising
            ``KeyError``/``ValueError``/``TypeError``, for a payload that holds none).
        """
        try:
            data = self.path.read_bytes()
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.logger.warning(
                "Cannot read the %s (%s); %s instead.", self.what, type(exc).__name__, self.instead
            )
            return None
        try:
            document = json.loads(self.fernet.decrypt(data))
        except InvalidToken:
            # Written under another secret: a changed one, or the one given now is wrong.
            self._explain(
                "The %s entry was made with another %s (changed since, or mistyped now): %s again.",
                self.what,
                self.secret_name,
                self.instead,
            )
            return None
        except ValueError:
            self._explain("The %s entry is damaged: %s again.", self.what, self.instead)
            return None
        try:
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                return None
            credential = parse(document)
        except (ValueError, KeyError, TypeError):
            # Written by another version, or damaged: never trust it.
            self._explain("The %s entry is of another version: %s again.", self.what, self.instead)
            return None
        if credential is None:
            return None
        return credential, mtime

    def _explain(self, message: str, *args: Any) -> None:
        """Say once (info) why the file is not used; a re-read under the login lock says it at debug."""
        self.logger.log(logging.DEBUG if self._explained else logging.INFO, message, *args)
        self._explained = True

    def write(self, payload: dict[str, Any], mtime: float | None = None) -> None:
        """Write the payload atomically (temporary file + rename), readable by the owner only.

        :param mtime: the file's modification time (epoch seconds); now when ``None``.
        """
        self.ensure_directory()
        temporary = self.directory / f".{self.key}.{os.getpid()}.{threading.get_ident()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(self.fernet.encrypt(json.dumps({"format": FORMAT, **payload}).encode()))
            if mtime is not None:
                os.utime(temporary, (mtime, mtime))
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def set_mtime(self, mtime: float) -> bool:
        """Set the file's modification time without rewriting it; whether that worked."""
        try:
            os.utime(self.path, (mtime, mtime))
        except OSError:
            return False
        return True

    def remove(self) -> None:
        """Remove the file (nothing when it is already gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
