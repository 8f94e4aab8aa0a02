"""Configuration documents (mappings, routing rules): JSON or YAML, in a file or an Airflow Variable.

A DAG names its document as a path or as ``var:<Variable key>``; :func:`read_document` reads and
parses either, and every error names where the document came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_document(source: str | Path, error: Callable[[str], Exception]) -> tuple[Any, str]:
    """The parsed document at ``source`` (a ``.json``/``.yaml`` file, or ``var:<Variable key>``),
    and a phrase naming where it came from (``mapping file dags/x.yaml``, ``Variable 'x'``).

    :param error: builds the exception raised, from a message naming the file or Variable.
    """
    text_source = str(source)
    if text_source.startswith("var:"):
        from airflow.sdk import Variable

        key = text_source[4:]
        where = f"Variable {key!r}"
        try:
            text = Variable.get(key)
        except Exception as exc:  # the Variable is missing: say which
            raise error(f"{where} cannot be read: {exc}") from None
    else:
        path = Path(text_source)
        where = f"mapping file {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise error(f"{where} cannot be read: {exc.strerror}.") from None
    return parse_text(text, where, error), where


def parse_text(text: str, where: str, error: Callable[[str], Exception]) -> Any:
    """JSON, else YAML."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{where} is neither JSON nor YAML: {exc}") from None
