"""Posting documents into SAP Business One exactly once, for every flow that writes into SAP.

Every document a flow posts carries a foreign id (the source system's id of the record) in a
field of its own (``NumAtCard`` or a ``U_`` field), and every write is looked up by it first, so
a re-run, a replay or a task killed half way never posts one twice. Where an approval procedure
applies, SAP keeps a *draft* instead of the document: that is an outcome ("pending approval
(draft N)"), not a failure, and later runs find the draft instead of posting again.

:class:`SapDocuments` holds that logic once; the ServiceTitan and Salesforce sinks use it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from airflow_provider_b1.hooks.sap_b1.writes import APPROVAL_DRAFT_CODE, is_draft
from airflow_provider_b1.sync.engine import Item
from airflow_provider_b1.sync.outcomes import Action, Outcome

#: ``DocObjectCode`` of the documents the flows post, by entity set (a draft names its kind so).
OBJECT_CODES = {
    "Invoices": "oInvoices",
    "CreditNotes": "oCreditNotes",
    "Orders": "oOrders",
    "IncomingPayments": "oIncomingPayments",
}


class SapDocuments:
    """Look-ups and posts of documents identified by a foreign id.

    :param hook: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    """

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def find(self, entity: str, field_name: str, values: Sequence[str], select: list[str]) -> dict[str, dict]:
        """``{foreign id: record}`` of the documents of ``entity`` whose ``field_name`` is one of
        ``values`` (as few GETs as the URL allows)."""
        if not values:
            return {}
        return {
            str(record.get(field_name)): record
            for page in self.hook.iter_any_of(entity, field_name, list(dict.fromkeys(values)), select=select)
            for record in page
        }

    def pending_approval(
        self, field_name: str, wanted: list[tuple[Item, str, str]]
    ) -> dict[Hashable, Outcome]:
        """The documents about to be posted that SAP already holds as drafts for approval.

        :param field_name: the foreign id's field.
        :param wanted: ``(item, foreign id value, DocObjectCode)`` per document.
        :return: an outcome per item that has a draft: ``skipped``, "pending approval (draft N)",
            the draft's ``DocEntry`` as its target key.
        """
        if not wanted:
            return {}
        drafts: dict[tuple[str, str], Any] = {}
        values = list(dict.fromkeys(value for _, value, _ in wanted))
        for page in self.hook.iter_any_of(
            "Drafts", field_name, values, select=["DocEntry", field_name, "DocObjectCode", "DocumentStatus"]
        ):
            for record in page:
                if record.get("DocumentStatus") == "bost_Close":
                    continue  # added as a document since: not pending
                kind = str(record.get("DocObjectCode") or "oInvoices")
                drafts[(str(record.get(field_name)), kind)] = record["DocEntry"]
        outcomes: dict[Hashable, Outcome] = {}
        for item, value, kind in wanted:
            entry = drafts.get((str(value), kind))
            if entry is not None and item.key not in outcomes:
                what = "credit memo pending approval" if kind == "oCreditNotes" else "pending approval"
                outcomes[item.key] = pending(item, entry, what)
        return outcomes

    def create(
        self,
        entity: str,
        field_name: str,
        creates: list[tuple[Item, dict[str, Any]]],
        records: dict[Hashable, dict[str, Any]] | None = None,
    ) -> dict[Hashable, Outcome]:
        """Post the documents in ``$batch``; each body was looked up by its foreign id just before.

        A document SAP holds as a draft for approval is ``skipped``, "pending approval (draft N)",
        whichever way the Service Layer says so (a 201 with the draft, or -2028 with a draft kept).

        :param records: filled with ``{item key: the document as SAP returned it}`` of the documents
            posted, when given (their ``DocNum``, say).
        """
        outcomes: dict[Hashable, Outcome] = {}
        if not creates:
            return outcomes
        results = self.hook.create_many(
            entity, [body for _, body in creates], dedupe_field=field_name, looked_up=True
        )
        for (item, body), result in zip(creates, results, strict=True):
            record = result.record or {}
            if result.outcome == "failed":
                outcomes[item.key] = self._refused(entity, field_name, item, body, result)
            elif is_draft(record):
                outcomes[item.key] = pending(item, record.get("DocEntry"))
            else:
                action = Action.CREATED if result.outcome == "created" else Action.UNCHANGED
                outcomes[item.key] = Outcome(
                    item.key, action, None, item.payload_hash, record.get("DocEntry")
                )
                if records is not None:
                    records[item.key] = record
        return outcomes

    def _refused(
        self, entity: str, field_name: str, item: Item, body: dict[str, Any], result: Any
    ) -> Outcome:
        """A document refused in ``$batch``. Where an approval procedure applies, SAP answers the
        POST with -2028 and keeps a draft, but a changeset rolls the draft back with it: the
        document is then posted alone, and the draft it leaves is found by its foreign id."""
        if str(result.code) != str(APPROVAL_DRAFT_CODE):
            return Outcome(item.key, Action.FAILED, result.error, item.payload_hash)
        record: dict[str, Any] = {}
        try:
            record = self.hook.create(entity, body, dedupe_field=field_name)
        except Exception as exc:
            if stops_the_load(exc):
                raise
            if str(getattr(exc, "code", None)) != str(APPROVAL_DRAFT_CODE):
                return Outcome(item.key, Action.FAILED, str(exc), item.payload_hash)
        if record and not is_draft(record):
            return Outcome(item.key, Action.CREATED, None, item.payload_hash, record.get("DocEntry"))
        value = str(body[field_name])
        found = self.find("Drafts", field_name, [value], ["DocEntry", field_name]).get(value)
        if found is None:
            return Outcome(item.key, Action.FAILED, result.error, item.payload_hash)
        return pending(item, found["DocEntry"])


def pending(item: Item, draft_entry: Any, what: str = "pending approval") -> Outcome:
    """A document SAP keeps as a draft for approval: ``skipped``, naming the draft (read back by
    :func:`draft_entry`)."""
    return Outcome(item.key, Action.SKIPPED, f"{what} (draft {draft_entry})", item.payload_hash)


_DRAFT = re.compile(r"\(draft (\d+)\)$")


def draft_entry(outcome: Outcome) -> int | None:
    """The draft's ``DocEntry`` of an outcome made by :func:`pending`, else ``None``."""
    if outcome.action is not Action.SKIPPED or not outcome.error:
        return None
    match = _DRAFT.search(outcome.error)
    return int(match.group(1)) if match else None


def differences(
    wanted: Mapping[str, Any], current: Mapping[str, Any], *, ignore: Sequence[str] = ()
) -> dict[str, Any]:
    """The properties of ``wanted`` that SAP holds otherwise (those in ``ignore`` left out)."""
    return {k: v for k, v in wanted.items() if k not in ignore and current.get(k) != v}


def stops_the_load(exc: BaseException) -> bool:
    """Whether an error writing one record must stop the page (the session, the server, a
    permanent set-up problem), rather than fail that record alone (SAP refused the record)."""
    from airflow_provider_b1.exceptions import PermanentError, RetryableError

    return isinstance(exc, (RetryableError, PermanentError)) and not is_business_error(exc)


def is_business_error(exc: BaseException) -> bool:
    """SAP refused a record (a business rule, a missing record): that record fails alone."""
    from airflow_provider_b1.hooks.sap_b1.errors import SapB1BusinessError, SapB1NotFoundError

    return isinstance(exc, (SapB1BusinessError, SapB1NotFoundError))
