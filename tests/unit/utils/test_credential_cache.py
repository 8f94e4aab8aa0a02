"""The encrypted credential file shared by a worker's task processes, without any hook."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from airflow_provider_b1.utils.credential_cache import CredentialFile


class _Cache(CredentialFile):
    suffix = ".cred"
    what = "test cache"
    instead = "starting over"


def _file(directory, secret="secret-1", identity=("https://h/", "user")):
    return _Cache(directory, identity, secret)


def _parse(document):
    return document.get("value") or None


def test_the_file_is_encrypted_0600_in_a_0700_directory_and_keeps_the_given_time(tmp_path):
    cache = _file(tmp_path / "a" / "b")
    cache.write({"value": "secret-value-123"}, mtime=1_000_000.0)
    assert cache.path.name == f"{cache.key}.cred"
    assert b"secret-value-123" not in cache.path.read_bytes()
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    assert cache.read(_parse) == ("secret-value-123", 1_000_000.0)
    assert [p.name for p in cache.directory.iterdir()] == [cache.path.name]  # no temporary file left
    assert cache.set_mtime(2_000_000.0)
    assert cache.read(_parse) == ("secret-value-123", 2_000_000.0)


def test_the_lock_file_is_0600_in_a_0700_directory(tmp_path):
    cache = _file(tmp_path / "d")
    with cache.file_lock(timeout=1):
        assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(cache.lock_path).st_mode) == 0o600


def test_two_secrets_cannot_read_each_others_file(tmp_path, caplog):
    first, second = _file(tmp_path), _file(tmp_path, secret="secret-2")
    assert first.path == second.path
    first.write({"value": "one"})
    caplog.set_level(logging.INFO)
    assert second.read(_parse) is None
    assert "was made with another secret (changed since, or mistyped now)" in caplog.text
    second.write({"value": "two"})
    assert first.read(_parse) is None
    assert second.read(_parse)[0] == "two"


def test_other_identities_have_other_files(tmp_path):
    assert _file(tmp_path).path != _file(tmp_path, identity=("https://h/", "other")).path


@pytest.mark.parametrize(
    "content",
    [b"", b"not a fernet token", None],  # None: a valid token of a payload of another format
)
def test_a_damaged_file_or_another_format_is_absent(tmp_path, content):
    cache = _file(tmp_path)
    cache.ensure_directory()
    if content is None:
        content = cache.fernet.encrypt(json.dumps({"format": 99, "value": "x"}).encode())
    cache.path.write_bytes(content)
    assert cache.read(_parse) is None


def test_a_payload_the_parser_refuses_is_absent(tmp_path):
    cache = _file(tmp_path)
    cache.write({"other": 1})
    assert cache.read(lambda document: document["value"]) is None  # KeyError
    assert cache.read(_parse) is None  # None


def test_an_unreadable_file_is_absent(tmp_path, caplog):
    cache = _file(tmp_path)
    cache.path.mkdir(parents=True)  # unreadable as a file, even for root
    caplog.set_level(logging.WARNING)
    assert cache.read(_parse) is None
    assert "Cannot read the test cache (IsADirectoryError); starting over instead." in caplog.text


def test_a_missing_file_is_absent_and_deleting_it_twice_is_fine(tmp_path):
    cache = _file(tmp_path)
    assert cache.read(_parse) is None
    assert not cache.set_mtime(1.0)
    cache.write({"value": "v"})
    cache.remove()
    cache.remove()
    assert cache.read(_parse) is None
