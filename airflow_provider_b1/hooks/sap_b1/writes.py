"""Writing to the Service Layer without ever creating a record twice.

SAP has no idempotency key: a POST that timed out may or may not have created its document. So a
POST is never sent again blindly. Each write names a dedupe field (``NumAtCard`` or a ``U_``
field holding the source system's id); when the outcome of a create is unknown, the record is
looked up by that field first and only sent again when absent. Bulk creates look up a whole
chunk at once and send what is missing in one ``$batch``. Retries and their backoff are the
hook's one :class:`~airflow_provider_b1.utils.retry.RetryPolicy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import requests

from airflow_provider_b1.hooks.sap_b1.batch import BatchRequest, BatchResult, build_batch, parse_batch_reply
from airflow_provider_b1.hooks.sap_b1.entities import ENTITIES, entity_spec
from airflow_provider_b1.hooks.sap_b1.errors import (
    SapB1AmbiguousWriteError,
    SapB1Error,
    SapB1NotFoundError,
)
from airflow_provider_b1.hooks.sap_b1.literals import MAX_REQUEST_LINE, entity_path, entity_set, odata_eq

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_b1.utils.retry import RetryPolicy

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 20
"""Records per ``$batch`` of :meth:`SapB1Hook.create_many`, and at most as many dedupe values per
``$filter`` lookup (``f eq 'a' or f eq 'b' ...``): each lookup is split further by the bytes its
request line takes (:meth:`SapB1Hook.iter_any_of`), so long values never make a URL too long."""


#: SAP's answer to the POST of a document an approval procedure holds as a draft (seen on 10.0:
#: -2028 "No matching records found"; the draft is kept, except inside a ``$batch`` changeset).
APPROVAL_DRAFT_CODE = -2028


def is_draft(record: Mapping[str, Any]) -> bool:
    """Whether a record SAP returned for a write is a draft (the other reading of an approval
    procedure: 201 with the ``Drafts`` record)."""
    return "Drafts" in str(record.get("odata.metadata") or record.get("@odata.context") or "")


@dataclass
class CreateResult:
    """The outcome of one input of :meth:`SapB1Hook.create_many`.

    :param index: position of the input.
    :param dedupe_value: its dedupe value.
    :param outcome: ``"created"``, ``"skipped"`` (already in SAP, or a repeat of an earlier
        input) or ``"failed"``.
    :param record: the created record (as returned by SAP) or the existing one (key and dedupe
        field only), when known.
    :param error: why it failed, one sentence.
    :param code: SAP's error code when SAP refused it.
    """

    index: int
    dedupe_value: Any
    outcome: str = "pending"
    record: dict[str, Any] | None = None
    error: str | None = None
    code: int | str | None = None


class SapB1Writes:
    """The writing half of :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.

    Relies on the hook's transport (``_call``, ``_json``), its ``base_url``, ``api_version``,
    ``retry_policy`` and its reads (``iter_pages``, ``get``).
    """

    base_url: str
    api_version: str
    retry_policy: RetryPolicy
    _call: Callable[..., requests.Response]
    _json: Callable[[requests.Response], Any]
    iter_pages: Callable[..., Iterator[list[Any]]]
    iter_any_of: Callable[..., Iterator[list[Any]]]
    too_long_to_look_up: Callable[..., list[Any]]
    get: Callable[..., dict[str, Any]]

    def _record_from_write(self, response: requests.Response) -> dict[str, Any]:
        if response.status_code == 204 or not response.content:
            location = response.headers.get("Location")
            if not location:
                return {}
            return self._json(self._call("GET", self._service_relative(location)))
        record = self._json(response)
        etag = response.headers.get("ETag")
        if etag and isinstance(record, dict):
            record.setdefault("@odata.etag", etag)
        return record

    def _service_relative(self, location: str) -> str:
        """A ``Location`` may name the server by another host name; keep only the service path."""
        marker = f"/b1s/{self.api_version}/"
        path = urlsplit(location).path if "://" in location else location
        return path.split(marker, 1)[1] if marker in path else path.lstrip("/")

    def create(
        self, entity: str, payload: dict[str, Any], *, dedupe_field: str | None = None
    ) -> dict[str, Any]:
        """Create a record (``POST``) and return it as SAP stored it.

        A POST is never repeated blindly: SAP has no idempotency key. When the outcome is
        unknown (reset, timeout or 5xx after sending) and ``dedupe_field`` is given, the record
        is looked up by that field first and only sent again when absent. Without
        ``dedupe_field`` the ambiguous outcome is raised.

        :param entity: entity set.
        :param payload: the record.
        :param dedupe_field: a field whose value identifies the record (``NumAtCard``, ``U_*``).
        :raises SapB1AmbiguousWriteError: outcome unknown and no way to check.
        """
        entity_set(entity)
        if dedupe_field is None:
            try:
                return self._record_from_write(self._call("POST", entity, json_body=payload))
            except SapB1AmbiguousWriteError as exc:
                raise SapB1AmbiguousWriteError(
                    f"{exc} It was not retried because create() was given no dedupe_field to check with; "
                    "pass one (e.g. NumAtCard or a U_ field holding the source id).",
                    status=exc.status,
                    code=exc.code,
                    sap_message=exc.sap_message,
                ) from None
        if dedupe_field not in payload or payload[dedupe_field] in (None, ""):
            raise ValueError(f"The payload has no value for its dedupe field {dedupe_field!r}.")
        value = payload[dedupe_field]
        uncertain = False
        for attempt in self.retry_policy.retrying(retry_on=SapB1AmbiguousWriteError):
            with attempt:
                if uncertain:
                    existing = self.find_by(entity, dedupe_field, value)
                    if existing is not None:
                        log.info("The interrupted create of %s did reach SAP; not sending it again.", entity)
                        return existing
                try:
                    return self._record_from_write(self._call("POST", entity, json_body=payload))
                except SapB1AmbiguousWriteError:
                    uncertain = True
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def update(
        self,
        entity: str,
        key: Any,
        payload: dict[str, Any],
        *,
        etag: str | None = None,
        replace_collections: bool = False,
    ) -> None:
        """Change a record (``PATCH``: merges; child rows without their row number are added).

        :param entity: entity set.
        :param key: key value.
        :param payload: the properties to change.
        :param etag: ``If-Match`` value: the change fails with :class:`SapB1ConflictError`
            when the record changed since it was read.
        :param replace_collections: send ``B1S-ReplaceCollectionsOnPatch: true`` so child
            collections are replaced rather than appended to.
        """
        headers: dict[str, str] = {}
        if etag:
            headers["If-Match"] = etag
        if replace_collections:
            headers["B1S-ReplaceCollectionsOnPatch"] = "true"
        # A PATCH can be repeated when it cannot add rows twice and no ETag would reject the
        # repeat of a change that already went through.
        adds_rows = any(isinstance(value, list) for value in payload.values()) and not replace_collections
        path = entity_path(entity, key)
        self._call("PATCH", path, json_body=payload, headers=headers, repeatable=not adds_rows and not etag)

    def find_by(
        self, entity: str, field_name: str, value: Any, *, select: list[str] | str | None = None
    ) -> dict[str, Any] | None:
        """The first record whose ``field_name`` equals ``value`` (escaped), or ``None``.

        :param entity: entity set.
        :param field_name: property to match.
        :param value: value to match.
        :param select: properties to return.
        """
        for page in self.iter_pages(entity, filter=odata_eq(field_name, value), select=select, top=1):
            if page:
                return page[0]
        return None

    def create_if_absent(
        self, entity: str, payload: dict[str, Any], *, dedupe_field: str
    ) -> tuple[dict[str, Any], bool]:
        """Create a record unless one with the same ``dedupe_field`` value exists.

        :param entity: entity set.
        :param payload: the record.
        :param dedupe_field: field identifying the record (``NumAtCard``, ``U_ExternalId``).
        :return: ``(record, created)``.
        """
        if dedupe_field not in payload or payload[dedupe_field] in (None, ""):
            raise ValueError(f"The payload has no value for its dedupe field {dedupe_field!r}.")
        existing = self.find_by(entity, dedupe_field, payload[dedupe_field])
        if existing is not None:
            return existing, False
        return self.create(entity, payload, dedupe_field=dedupe_field), True

    def batch(self, requests: list[BatchRequest], *, atomic: bool = True) -> list[BatchResult]:
        """Send requests in one ``$batch`` and return one result per request, in order.

        Execution stops at the first failure: later requests come back with
        ``executed == False``. With ``atomic=True`` consecutive writes share a changeset and
        stand or fall together; with ``atomic=False`` each write has a changeset of its own.

        :param requests: the requests.
        :param atomic: see above.
        :raises SapB1AmbiguousWriteError: the batch held writes and its outcome is unknown.
        """
        if not requests:
            return []
        service_path = urlsplit(self.base_url).path
        body, content_type, units = build_batch(requests, service_path=service_path, atomic=atomic)
        has_writes = any(request.is_write for request in requests)
        response = self._call(
            "POST",
            "$batch",
            data=body,
            headers={"Content-Type": content_type, "Accept": "multipart/mixed"},
            what="$batch",
            repeatable=not has_writes,
        )
        try:
            return parse_batch_reply(
                response.content, response.headers.get("Content-Type", ""), requests, units
            )
        except ValueError as exc:
            raise SapB1AmbiguousWriteError(
                f"The reply to POST $batch could not be read ({exc}); look the records up before sending "
                "them again.",
                status=response.status_code,
            ) from None

    def existing_values(
        self, entity: str, field_name: str, values: Iterable[Any], *, chunk_size: int = LOOKUP_CHUNK
    ) -> dict[Any, dict[str, Any]]:
        """Which of ``values`` already exist in ``field_name``: filtered GETs, as few as the URL allows.

        The values are split by the bytes each request line takes once percent-encoded (see
        :meth:`SapB1Hook.iter_any_of`), and at most ``chunk_size`` go in one request.

        :param entity: entity set.
        :param field_name: the dedupe field.
        :param values: values to look for.
        :param chunk_size: at most this many values per request (keeps each answer to one page).
        :return: ``{value: record}`` with the key and ``field_name`` of each record found.
        :raises SapB1RequestTooLongError: before anything is sent, when a value alone is too long
            to look up in a URL (:meth:`SapB1Hook.too_long_to_look_up` finds them beforehand): it
            must not be taken for absent.
        """
        distinct = list(dict.fromkeys(v for v in values if v not in (None, "")))
        spec = ENTITIES.get(entity)
        select = [spec.key, field_name] if spec and spec.key != field_name else [field_name]
        found: dict[Any, dict[str, Any]] = {}
        if not distinct:
            return found
        for page in self.iter_any_of(entity, field_name, distinct, select=select, max_values=chunk_size):
            for record in page:
                found.setdefault(record.get(field_name), record)
        return found

    def create_many(
        self,
        entity: str,
        payloads: list[dict[str, Any]],
        *,
        dedupe_field: str,
        chunk_size: int = LOOKUP_CHUNK,
        looked_up: bool = False,
    ) -> list[CreateResult]:
        """Create many records idempotently with ``$batch``; one result per input, in order.

        Per chunk: one filtered GET finds the dedupe values already in SAP (``skipped``); the
        absent records go in one ``$batch``, each in its own changeset, so a bad record fails
        alone (``failed`` with SAP's message) and the records SAP did not reach after it are
        sent again in the next round. When a batch's outcome is unknown (reset, timeout, 5xx),
        the chunk's values are looked up again before anything is re-sent, so nothing is created
        twice. Inputs repeating an earlier input's dedupe value are ``skipped``.

        :param entity: entity set.
        :param payloads: the records.
        :param dedupe_field: field identifying each record (``NumAtCard``, ``U_ExternalId``).
        :param chunk_size: records per lookup and per ``$batch``.
        :param looked_up: the caller has just looked every record up by its dedupe value and found
            none in SAP, so the first look-up is skipped (a look-up costs the session a scan of
            the entity). A batch whose outcome is unknown is still looked up before anything is
            sent again.
        """
        results = [CreateResult(index=i, dedupe_value=p.get(dedupe_field)) for i, p in enumerate(payloads)]
        first_seen: dict[Any, int] = {}
        todo: list[int] = []
        spec = ENTITIES.get(entity)
        select = [spec.key, dedupe_field] if spec and spec.key != dedupe_field else [dedupe_field]
        unsearchable = self.too_long_to_look_up(
            entity,
            dedupe_field,
            dict.fromkeys(r.dedupe_value for r in results if r.dedupe_value not in (None, "")),
            select=select,
        )
        for result in results:
            value = result.dedupe_value
            if value in (None, ""):
                result.outcome = "failed"
                result.error = f"The record has no value for its dedupe field {dedupe_field}."
            elif value in unsearchable:
                # Without a lookup, a create could not be checked for an earlier copy: not sent.
                result.outcome = "failed"
                result.error = (
                    f"Its {dedupe_field} is too long to look up in a URL (the web server in front of the "
                    f"Service Layer accepts request lines of at most {MAX_REQUEST_LINE:,} bytes, and each "
                    "non-ASCII character takes up to 12 once percent-encoded), so SAP cannot be asked "
                    "whether it exists already; it was not sent. Shorten the value."
                )
            elif value in first_seen:
                result.outcome = "skipped"
                result.error = f"Same {dedupe_field} as input #{first_seen[value]}."
            else:
                first_seen[value] = result.index
                todo.append(result.index)
        for start in range(0, len(todo), chunk_size):
            self._create_chunk(
                entity, payloads, results, todo[start : start + chunk_size], dedupe_field, looked_up
            )
        return results

    def _create_chunk(
        self,
        entity: str,
        payloads: list[dict[str, Any]],
        results: list[CreateResult],
        chunk: list[int],
        dedupe_field: str,
        looked_up: bool = False,
    ) -> None:
        if not looked_up:
            self._mark_found(entity, dedupe_field, results, chunk, "skipped")

        def pending() -> list[int]:
            return [index for index in chunk if results[index].outcome == "pending"]

        try:
            for attempt in self.retry_policy.retrying(retry_on=SapB1AmbiguousWriteError):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        # What reached SAP before the failure was created by us: it was absent.
                        self._mark_found(entity, dedupe_field, results, pending(), "created")
                    self._send_rounds(entity, payloads, results, pending)
        except SapB1AmbiguousWriteError as exc:
            # Uncertain again and again: the policy's attempts or time are spent.
            for index in pending():
                results[index].outcome, results[index].error = "failed", str(exc)

    def _mark_found(
        self, entity: str, dedupe_field: str, results: list[CreateResult], indexes: list[int], outcome: str
    ) -> None:
        """Look the inputs at ``indexes`` up by their dedupe values; give those SAP has ``outcome``."""
        found = self.existing_values(entity, dedupe_field, [results[i].dedupe_value for i in indexes])
        for index in indexes:
            record = found.get(results[index].dedupe_value)
            if record is not None:
                results[index].outcome, results[index].record = outcome, record

    def _send_rounds(
        self,
        entity: str,
        payloads: list[dict[str, Any]],
        results: list[CreateResult],
        pending: Callable[[], list[int]],
    ) -> None:
        """Send what is pending in ``$batch`` rounds until nothing is, or a round makes no progress.

        :raises SapB1AmbiguousWriteError: a round's outcome is unknown (the caller looks up what
            landed before the next attempt).
        """
        todo = pending()
        while todo:
            try:
                replies = self.batch([BatchRequest("POST", entity, payloads[i]) for i in todo], atomic=False)
            except SapB1AmbiguousWriteError:
                raise
            except SapB1Error as exc:
                for index in todo:
                    results[index].outcome, results[index].error, results[index].code = (
                        "failed",
                        str(exc),
                        exc.code,
                    )
                return
            progressed = False
            for index, reply in zip(todo, replies):
                result = results[index]
                if reply.ok:
                    result.outcome, result.record = "created", reply.record
                    progressed = True
                elif reply.executed:
                    result.outcome, result.code = "failed", reply.code
                    result.error = (
                        f"SAP refused POST {entity} in $batch (HTTP {reply.status}, SAP code {reply.code}: "
                        f"{reply.message})."
                    )
                    progressed = True
            if not progressed:
                for index in pending():
                    results[index].outcome = "failed"
                    results[index].error = "The Service Layer ran none of the batch's requests."
                return
            todo = pending()

    def upsert(
        self,
        entity: str,
        payload: dict[str, Any],
        *,
        dedupe_field: str | None = None,
        replace_collections: bool = False,
    ) -> tuple[Any, Literal["created", "updated"]]:
        """Update the record that ``payload`` identifies, or create it when SAP has none.

        The record is looked up by its dedupe field: ``dedupe_field`` when given, else the key
        when the payload carries it (``CardCode`` of a business partner), else the entity's
        declared dedupe field (``NumAtCard`` for documents). When found it is changed with a
        ``PATCH`` of the payload (the key itself left out); when not, it is created through
        :meth:`create` with the same dedupe field, so an interrupted create is never doubled.

        :param entity: entity set declared in
            :data:`~airflow_provider_b1.hooks.sap_b1.entities.ENTITIES`.
        :param payload: the record's properties.
        :param dedupe_field: the property identifying the record, e.g. ``U_ExternalId``.
        :param replace_collections: on update, replace child collections (``DocumentLines``)
            instead of appending the payload's rows to them; see :meth:`update`.
        :return: ``(record, "created")`` with the record as SAP stored it, or
            ``(key, "updated")`` with the key of the record that was changed.
        :raises ValueError: the payload has no value for its dedupe field, or the entity
            declares none and ``dedupe_field`` was not given.
        """
        spec = entity_spec(entity)
        field_name = dedupe_field
        if field_name is None:
            field_name = spec.key if payload.get(spec.key) not in (None, "") else spec.dedupe
        if field_name is None:
            raise ValueError(
                f"{entity} has no declared dedupe field and the payload carries no {spec.key}; pass "
                "dedupe_field= (e.g. a U_ field holding the source system's id)."
            )
        value = payload.get(field_name)
        if value in (None, ""):
            raise ValueError(f"The payload has no value for its dedupe field {field_name!r}.")
        if field_name == spec.key:
            try:
                existing: dict[str, Any] | None = self.get(entity, value, select=spec.key)
            except SapB1NotFoundError:
                existing = None
        else:
            existing = self.find_by(entity, field_name, value, select=[spec.key, field_name])
        if existing is None:
            return self.create(entity, payload, dedupe_field=field_name), "created"
        key = existing[spec.key]
        changes = {name: item for name, item in payload.items() if name != spec.key}
        self.update(entity, key, changes, replace_collections=replace_collections)
        return key, "updated"
