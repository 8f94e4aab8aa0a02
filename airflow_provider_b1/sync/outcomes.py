"""What became of one record: the one vocabulary of sinks, summaries and the audit trail."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any


class Action(str, enum.Enum):
    """What happened to one record in one attempt.

    The first five are what a write of a record read from a source ends with. Two more exist for
    targets that keep records the source deleted (the warehouse): ``deleted`` is a row marked
    deleted because the source no longer holds its key (written by a deletion check, never by a
    load), and ``restored`` is such a row a later load brought back because the source holds the
    key again. Neither is a failure, so replay never picks either up.
    """

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"
    DELETED = "deleted"
    RESTORED = "restored"

    def __str__(self) -> str:
        return self.value


ACTIONS: tuple[str, ...] = tuple(action.value for action in Action)
#: The actions a summary always shows, at 0 too; ``deleted`` and ``restored`` are rare (a flow
#: whose target keeps what the source deletes) and shown only when they happen.
USUAL_ACTIONS: tuple[str, ...] = tuple(
    action for action in ACTIONS if action not in (Action.DELETED.value, Action.RESTORED.value)
)


# Slotted and not frozen: one is made per record on loads of millions, and a frozen dataclass
# costs three times as much to build.
@dataclasses.dataclass(slots=True)
class Outcome:
    """What became of one record read from a source.

    :param key: the record's natural key in the source (as sent when it could not be read;
        ``None`` when it has none).
    :param action: :class:`Action` (a plain string of it is accepted).
    :param error: why it failed or was skipped, one sentence; required for ``failed``.
    :param payload_hash: SHA-256 of what was (or would have been) written, when known.
    :param target_key: the record's key in the target when it differs from ``key`` (a document
        number SAP gave the record); ``None`` means the same as ``key``.
    :param waiting_for: what a failed record waits for (``"invoice 42"``): another record the
        target does not hold yet. It stays failed, and the next incremental run of its stream
        reads it again by key and writes it once that record is there (see :func:`waiting`).
    """

    key: Any
    action: Action
    error: str | None = None
    payload_hash: str | None = None
    target_key: Any = None
    waiting_for: str | None = None

    def __post_init__(self) -> None:
        if self.action.__class__ is not Action:
            self.action = Action(self.action)
        if self.waiting_for is not None and self.action is not Action.FAILED:
            raise ValueError(f"Only a failed record waits; this one is {self.action.value}.")


def waiting(key: Any, what: str, reason: str, payload_hash: str | None = None) -> Outcome:
    """A record that cannot be written until another one is in the target: failed, with ``reason``,
    waiting for ``what`` (``"invoice 42"``). The next incremental run of the stream retries it,
    before it reads what changed; replay retries it too.

    :param key: the record's key.
    :param what: what it waits for, a few words.
    :param reason: the failure reason, one sentence (say "waiting for ...").
    :param payload_hash: the hash of what would have been written.
    """
    return Outcome(key, Action.FAILED, reason, payload_hash, None, what)


def count_actions(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """``{action: n}`` with every action present."""
    counts = dict.fromkeys(ACTIONS, 0)
    for outcome in outcomes:
        counts[outcome.action.value] += 1
    return counts
