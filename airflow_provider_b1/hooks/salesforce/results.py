"""Records as a flow wants them, and each written record's own result.

* :func:`clean` drops the ``attributes`` Salesforce puts on every record (and on every nested
  relationship record and child-query record), keeping the nesting itself: a parent's fields stay
  under its relationship name (``{"Account": {"Name": ...}}``) and a child query stays as
  Salesforce gives it (``{"OpportunityLineItems": {"totalSize", "done", "records": [...]}}``).
* :class:`UpsertResult` is the result of one record of a Collections or Bulk API 2.0 write. A
  record Salesforce refused is a result with ``success=False`` and its :class:`RecordError`\\ s:
  never an exception, so one bad record never sinks its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_b1.hooks.salesforce.errors import RecordError, SalesforcePermanentError


def clean(value: Any) -> Any:
    """A record (or a list of them, or a child-query result) without Salesforce's ``attributes``."""
    if isinstance(value, Mapping):
        return {k: clean(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


@dataclass(frozen=True)
class UpsertResult:
    """What Salesforce did with one record of a write, at the record's place in the input.

    :param index: the record's position in the records given to the write (0-based).
    :param id: the record's Salesforce id (``None`` when it was refused before getting one).
    :param success: whether Salesforce wrote it.
    :param created: whether it was created (``False`` for an update; ``None`` when unknown).
    :param errors: why Salesforce refused it (empty on success).
    """

    index: int
    id: str | None
    success: bool
    created: bool | None = False
    errors: tuple[RecordError, ...] = field(default_factory=tuple)

    @property
    def error(self) -> str | None:
        """The errors in one line (``CODE: message (fields); ...``), ``None`` on success."""
        if self.success:
            return None
        return "; ".join(str(e) for e in self.errors) or "Salesforce refused it without saying why"

    @property
    def error_codes(self) -> tuple[str, ...]:
        """The errors' codes."""
        return tuple(e.error_code for e in self.errors)


def collection_results(reply: Any, offset: int, count: int, what: str) -> list[UpsertResult]:
    """The results of one sObject Collections call, in the order of its records.

    :param reply: the decoded reply (a list of ``{id, success, errors, created}``).
    :param offset: the index of the call's first record in the whole write.
    :param count: how many records the call sent.
    :param what: the call, as a message names it.
    :raises SalesforcePermanentError: when the reply is not one result per record.
    """
    if not isinstance(reply, list) or len(reply) != count:
        got = len(reply) if isinstance(reply, list) else type(reply).__name__
        raise SalesforcePermanentError(
            f"Salesforce answered {what} with {got} results for {count} records; the write's outcome per record "
            "is unknown, look the records up before sending them again."
        )
    results = []
    for position, item in enumerate(reply):
        item = item if isinstance(item, Mapping) else {}
        success = bool(item.get("success"))
        errors = tuple(RecordError.from_item(e) for e in item.get("errors") or [])
        created = item.get("created")
        results.append(
            UpsertResult(
                index=offset + position,
                id=str(item["id"]) if item.get("id") else None,
                success=success,
                created=bool(created) if created is not None else (False if success else None),
                errors=errors,
            )
        )
    return results


def collection_record(sobject: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as sObject Collections takes it: ``attributes.type`` first, the fields after."""
    fields = {k: v for k, v in record.items() if k != "attributes"}
    return {"attributes": {"type": sobject}, **fields}


def failed_results(results: Sequence[UpsertResult]) -> dict[int, UpsertResult]:
    """``{index: result}`` of the records Salesforce refused."""
    return {r.index: r for r in results if not r.success}
