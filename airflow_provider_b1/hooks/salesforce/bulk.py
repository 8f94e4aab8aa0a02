"""Bulk API 2.0: query and ingest jobs, their CSV, and each record's result.

The steps of a job are made one by one through the hook's own transport (so each gets the token
renewal after a 401, the API limit guard, TLS, the typed errors and, where safe, the retries)
rather than through simple-salesforce's ``bulk2`` wrappers, which wait five seconds before the
first poll, retry nothing, and read whole result sets into memory.

* **Query**: ``POST jobs/query`` (CSV), poll ``GET jobs/query/{id}`` until ``JobComplete``,
  then ``GET jobs/query/{id}/results?maxRecords=N[&locator=L]`` page by page while the
  ``Sforce-Locator`` header is not ``null``. Values come as text; :func:`typed` turns them into
  what the REST API would have given (booleans, numbers, ``None`` for empty), following the
  describe of the queried object, and ``Account.Name`` columns become ``{"Account": {"Name"}}``
  (a missing parent too, its fields ``None``: the CSV does not tell it apart).
* **Ingest**: ``POST jobs/ingest``, ``PUT jobs/ingest/{id}/batches`` (the CSV, at most
  :data:`MAX_UPLOAD_BYTES` per job), ``PATCH {"state": "UploadComplete"}``, poll until
  ``JobComplete``, then ``successfulResults/``, ``failedResults/`` and ``unprocessedrecords/``
  give each record's result. Salesforce processes nothing before the job is closed, so a
  failed create or upload is abandoned (aborted) and made again with a new job; that is safe
  for inserts too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from airflow_provider_b1.hooks.salesforce.errors import (
    RecordError,
    SalesforceAmbiguousWriteError,
    SalesforceBulkJobError,
    SalesforceError,
    SalesforcePagingError,
    SalesforceTransientError,
)
from airflow_provider_b1.hooks.salesforce.results import UpsertResult
from airflow_provider_b1.utils.paging import Page, paginate

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest CSV one ingest job takes (Salesforce's 150 MB, less the base64 it counts)."""

DEFAULT_PAGE_RECORDS = 50_000
"""Records per page of a query job's results unless the caller says otherwise."""

NULL = "#N/A"
"""How a Bulk API 2.0 CSV sets a field to null (an empty value leaves it as it is)."""

_DONE = "JobComplete"
_FAILED = frozenset({"Failed", "Aborted"})
_FROM = re.compile(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_FIELDS = re.compile(r"^[A-Za-z0-9_.,\s]*$")

Call = Callable[..., requests.Response]
"""The hook's transport: ``call(method, path, *, what, repeatable, json=, data=, headers=, params=)``."""


def queried_object(soql: str) -> str | None:
    """The object a (Bulk API 2.0: subquery-free) SOQL reads, ``None`` when it names none."""
    match = _FROM.search(soql)
    return match.group(1) if match else None


# -- CSV out -------------------------------------------------------------------------------------


def csv_value(value: Any) -> str:
    """A value as a Bulk API 2.0 CSV cell: ``#N/A`` for ``None``, ``true``/``false``, ISO dates."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"A datetime for Salesforce needs a time zone, not {value!r}.")
        return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with parent references by external id as Bulk CSV columns.

    ``{"Account": {"SAP_Card_Code__c": "C1"}}`` becomes ``{"Account.SAP_Card_Code__c": "C1"}``.
    """
    flat: dict[str, Any] = {}
    for name, value in record.items():
        if name == "attributes":
            continue
        if isinstance(value, Mapping):
            for child, inner in value.items():
                if child != "attributes":
                    flat[f"{name}.{child}"] = inner
        else:
            flat[name] = value
    return flat


@dataclass(frozen=True)
class Upload:
    """One ingest job's CSV and the records it carries.

    :param offset: index of its first record in the whole write.
    :param count: records in it.
    :param columns: its header.
    :param data: the CSV (UTF-8, LF line endings).
    """

    offset: int
    count: int
    columns: tuple[str, ...]
    data: bytes


def encode_uploads(records: Sequence[Mapping[str, Any]], max_bytes: int = MAX_UPLOAD_BYTES) -> list[Upload]:
    """The records as CSV, split into uploads of at most ``max_bytes``.

    Every upload has the columns of all records (in the order first seen); a record without a
    column leaves that field as it is (an empty cell), ``None`` sets it to null.
    """
    flat = [flatten(r) for r in records]
    columns = tuple(dict.fromkeys(name for r in flat for name in r))
    uploads: list[Upload] = []
    header = _csv_line(columns)
    body = io.BytesIO()
    body.write(header)
    offset = 0
    count = 0
    for index, record in enumerate(flat):
        line = _csv_line([csv_value(record[c]) if c in record else "" for c in columns])
        if count and body.tell() + len(line) > max_bytes:
            uploads.append(Upload(offset, count, columns, body.getvalue()))
            body = io.BytesIO()
            body.write(header)
            offset, count = index, 0
        body.write(line)
        count += 1
    if count:
        uploads.append(Upload(offset, count, columns, body.getvalue()))
    return uploads


def _csv_line(values: Iterable[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(list(values))
    return buffer.getvalue().encode("utf-8")


# -- CSV in --------------------------------------------------------------------------------------


def read_csv(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a Bulk API 2.0 CSV (an empty body has neither)."""
    rows = list(csv.reader(io.StringIO(text.replace("\x00", ""), newline="")))
    if not rows:
        return [], []
    return rows[0], [r for r in rows[1:] if r]


def typed(text: str | None, kind: str | None) -> Any:
    """A CSV cell as the REST API would give it: ``None`` for empty, booleans and numbers typed.

    :param text: the cell.
    :param kind: the describe ``type`` of its field (``None``: unknown, kept as text).
    """
    if text is None or text == "":
        return None
    if kind == "boolean":
        return text.strip().lower() == "true"
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            return float(text)
    if kind in ("double", "currency", "percent"):
        return float(text)
    return text


def nest(row: Mapping[str, Any]) -> dict[str, Any]:
    """``{"Account.Name": "Acme"}`` as ``{"Account": {"Name": "Acme"}}``.

    A CSV cannot tell a missing parent from a parent whose fields are empty: both come back as
    a dict of ``None`` (where the REST API gives ``"Account": null`` for a missing parent).
    """
    out: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for name, value in row.items():
        if "." in name:
            head, _, rest = name.partition(".")
            groups.setdefault(head, {})[rest] = value
            out.setdefault(head, None)
        else:
            out[name] = value
    for head, inner in groups.items():
        out[head] = nest(inner)
    return out


def parse_bulk_error(text: str | None) -> list[RecordError]:
    """The errors of a ``sf__Error`` cell: ``CODE:message:field,field --`` (fields optional)."""
    text = (text or "").strip()
    if not text:
        return [RecordError("UNKNOWN", "Salesforce refused the record without saying why")]
    if text.endswith("--"):
        text = text[:-2].rstrip()
    code, _, rest = text.partition(":")
    if not rest or not re.fullmatch(r"[A-Z0-9_]+", code.strip()):
        return [RecordError("UNKNOWN", text)]
    message, fields = rest, ""
    head, sep, tail = rest.rpartition(":")
    if sep and _FIELDS.match(tail):
        message, fields = head, tail
    names = tuple(f.strip() for f in fields.split(",") if f.strip())
    return [RecordError(code.strip(), message.strip(), names)]


def ingest_results(
    upload: Upload,
    key_column: str | None,
    successful: str,
    failed: str,
    unprocessed: str,
) -> list[UpsertResult]:
    """Each record's result of one ingest job, in the order the records were given.

    Salesforce's result files list records in no promised order, each with the values it was
    sent; they are matched back by the key column's value (the external id, or ``Id``), or by
    the whole row when there is no key, first come first served for repeated values.

    :param upload: the job's upload.
    :param key_column: the column that identifies a record, ``None`` to match whole rows.
    :param successful: the ``successfulResults/`` CSV (``sf__Id``, ``sf__Created``, the row).
    :param failed: the ``failedResults/`` CSV (``sf__Id``, ``sf__Error``, the row).
    :param unprocessed: the ``unprocessedrecords/`` CSV (the row).
    """
    columns = list(upload.columns)
    _, sent = read_csv(upload.data.decode("utf-8"))
    pending: dict[Hashable, deque[int]] = defaultdict(deque)
    for position, row in enumerate(sent):
        pending[_key(dict(zip(columns, row)), columns, key_column)].append(position)
    results: dict[int, UpsertResult] = {}

    def place(row: dict[str, str], make: Callable[[int], UpsertResult]) -> None:
        queue = pending.get(_key(row, columns, key_column))
        if queue:
            position = queue.popleft()
            results[position] = make(upload.offset + position)

    header, rows = read_csv(successful)
    for values in rows:
        row = dict(zip(header, values))
        place(
            row,
            lambda index, row=row: UpsertResult(
                index,
                row.get("sf__Id") or None,
                True,
                (row.get("sf__Created") or "").strip().lower() == "true",
            ),
        )
    header, rows = read_csv(failed)
    for values in rows:
        row = dict(zip(header, values))
        place(
            row,
            lambda index, row=row: UpsertResult(
                index, row.get("sf__Id") or None, False, None, tuple(parse_bulk_error(row.get("sf__Error")))
            ),
        )
    header, rows = read_csv(unprocessed)
    unprocessed_error = (RecordError("UNPROCESSED", "the job ended before Salesforce processed this record"),)
    for values in rows:
        row = dict(zip(header, values))
        place(row, lambda index: UpsertResult(index, None, False, None, unprocessed_error))
    missing = (RecordError("UNKNOWN", "Salesforce's job results do not mention this record"),)
    return [
        results.get(position) or UpsertResult(upload.offset + position, None, False, None, missing)
        for position in range(upload.count)
    ]


def _key(row: Mapping[str, str], columns: Sequence[str], key_column: str | None) -> Hashable:
    if key_column and key_column in columns:
        return row.get(key_column, "")
    return tuple(row.get(c, "") for c in columns)


# -- jobs ----------------------------------------------------------------------------------------


class _LocatorPaginator:
    """Reads a query job's result pages: the next request is the ``Sforce-Locator`` header."""

    hint = "the job's Sforce-Locator repeated itself"

    def read(self, response: requests.Response) -> Page[tuple[list[str], list[list[str]]]]:
        header, rows = read_csv(response.content.decode("utf-8"))
        locator = response.headers.get("Sforce-Locator") or ""
        following = None if locator in ("", "null") else locator
        # A page with no row but a locator is still handed on (as empty) so its header is known.
        return Page((header, rows), empty=not rows, next=following)


class BulkJobs:
    """The Bulk API 2.0 job steps of one hook.

    :param call: the hook's transport (token, limit guard, errors, retries).
    :param poll_interval: longest wait between two polls of a job (the first is much shorter).
    :param timeout: seconds a job may take before the wait gives up.
    :param sleep: replaceable in tests.
    """

    def __init__(
        self,
        call: Call,
        *,
        poll_interval: float = 5.0,
        timeout: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.call = call
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._sleep = sleep

    # -- query --------------------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, include_deleted: bool = False, max_records: int = DEFAULT_PAGE_RECORDS
    ) -> Iterator[tuple[list[str], list[list[str]]]]:
        """Run a query job and yield its result pages as ``(header, rows)`` of text."""
        job = self.call(
            "POST",
            "jobs/query",
            json={
                "operation": "queryAll" if include_deleted else "query",
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
            what="creating a Bulk API 2.0 query job",
            repeatable=True,
        ).json()
        job_id = str(job["id"])
        self.wait(job_id, query=True)
        path = f"jobs/query/{job_id}/results"

        def send(locator: Hashable | None) -> requests.Response:
            params: dict[str, Any] = {"maxRecords": max_records}
            if locator:
                params["locator"] = locator
            return self.call(
                "GET",
                path,
                params=params,
                headers={"Accept": "text/csv"},
                what=f"reading the results of query job {job_id}",
                repeatable=True,
            )

        yield from paginate(
            send,
            _LocatorPaginator(),
            source="Salesforce",
            what=f"query job {job_id}",
            error=SalesforcePagingError,
        )

    # -- ingest -------------------------------------------------------------------------------

    def ingest(
        self,
        sobject: str,
        operation: str,
        upload: Upload,
        *,
        external_id_field: str | None = None,
        attempts: int = 3,
    ) -> list[UpsertResult]:
        """Run one ingest job over an upload and return each record's result in input order.

        :param sobject: the object.
        :param operation: ``upsert``, ``update`` or ``insert``.
        :param upload: the CSV (see :func:`encode_uploads`).
        :param external_id_field: the external id field of an upsert.
        :param attempts: how many jobs may be started for this upload when one fails before it
            is closed (nothing of it was processed then).
        :raises SalesforceBulkJobError: the job failed or was aborted as a whole.
        """
        job_id = self._open_and_upload(sobject, operation, upload, external_id_field, attempts)
        self._close(job_id)
        self.wait(job_id, query=False)
        files = {}
        for name in ("successfulResults", "failedResults", "unprocessedrecords"):
            files[name] = self.call(
                "GET",
                f"jobs/ingest/{job_id}/{name}/",
                headers={"Accept": "text/csv"},
                what=f"reading the {name} of ingest job {job_id}",
                repeatable=True,
            ).content.decode("utf-8")
        key = external_id_field if operation == "upsert" else ("Id" if operation == "update" else None)
        return ingest_results(
            upload, key, files["successfulResults"], files["failedResults"], files["unprocessedrecords"]
        )

    def _open_and_upload(
        self, sobject: str, operation: str, upload: Upload, external_id_field: str | None, attempts: int
    ) -> str:
        spec: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if external_id_field:
            spec["externalIdFieldName"] = external_id_field
        for attempt in range(1, attempts + 1):
            # An open job processes nothing: creating another one after a failure is safe.
            job = self.call(
                "POST",
                "jobs/ingest",
                json=spec,
                what=f"creating a Bulk API 2.0 {operation} job on {sobject}",
                repeatable=True,
            ).json()
            job_id = str(job["id"])
            try:
                self.call(
                    "PUT",
                    f"jobs/ingest/{job_id}/batches",
                    data=upload.data,
                    headers={"Content-Type": "text/csv"},
                    what=f"uploading {upload.count} records to ingest job {job_id}",
                    repeatable=False,
                )
            except SalesforceError as exc:
                self._abort(job_id)
                if attempt >= attempts or not _worth_another_job(exc):
                    raise
                log.warning("Uploading to ingest job %s failed (%s); starting another job.", job_id, exc)
                continue
            return job_id
        raise AssertionError("unreachable")  # pragma: no cover

    def _close(self, job_id: str) -> None:
        """Mark the upload complete; when the answer is lost, read the job's state before asking again."""
        try:
            self.call(
                "PATCH",
                f"jobs/ingest/{job_id}",
                json={"state": "UploadComplete"},
                what=f"closing ingest job {job_id}",
                repeatable=False,
            )
        except SalesforceError as exc:
            if not _worth_another_job(exc):
                raise
            state = self.job(job_id, query=False).get("state")
            if state == "Open":
                self.call(
                    "PATCH",
                    f"jobs/ingest/{job_id}",
                    json={"state": "UploadComplete"},
                    what=f"closing ingest job {job_id}",
                    repeatable=True,
                )

    def _abort(self, job_id: str) -> None:
        try:
            self.call(
                "PATCH",
                f"jobs/ingest/{job_id}",
                json={"state": "Aborted"},
                what=f"aborting ingest job {job_id}",
                repeatable=True,
            )
        except SalesforceError as exc:
            log.warning(
                "Could not abort ingest job %s (%s); Salesforce deletes it after 7 days.", job_id, exc
            )

    # -- jobs ---------------------------------------------------------------------------------

    def job(self, job_id: str, *, query: bool) -> dict[str, Any]:
        """The job's info (``state``, ``errorMessage``, ``numberRecordsProcessed``...)."""
        kind = "query" if query else "ingest"
        return self.call(
            "GET", f"jobs/{kind}/{job_id}", what=f"reading {kind} job {job_id}", repeatable=True
        ).json()

    def wait(self, job_id: str, *, query: bool) -> dict[str, Any]:
        """Poll a job until it completes; the waits grow from 0.2 s to :attr:`poll_interval`.

        :raises SalesforceBulkJobError: the job failed, was aborted, or took longer than :attr:`timeout`.
        """
        kind = "query" if query else "ingest"
        deadline = time.monotonic() + self.timeout
        pause = min(0.2, self.poll_interval)
        while True:
            info = self.job(job_id, query=query)
            state = info.get("state")
            if state == _DONE:
                return info
            if state in _FAILED:
                said = str(info.get("errorMessage") or "").strip()
                raise SalesforceBulkJobError(
                    f"Salesforce's Bulk API 2.0 {kind} job {job_id} ended {state}"
                    f"{': ' + said[:300] if said else ''}; see Setup > Bulk Data Load Jobs for the details.",
                    job_id=job_id,
                    error_code=str(state),
                )
            if time.monotonic() + pause > deadline:
                raise SalesforceBulkJobError(
                    f"Salesforce's Bulk API 2.0 {kind} job {job_id} is still {state} after {self.timeout:.0f} s; "
                    "it was left running (see Setup > Bulk Data Load Jobs).",
                    job_id=job_id,
                )
            self._sleep(pause)
            pause = min(pause * 1.5, self.poll_interval)


def _worth_another_job(exc: SalesforceError) -> bool:
    """Whether an upload's failure may pass with another try (a server or network failure)."""
    return isinstance(exc, (SalesforceTransientError, SalesforceAmbiguousWriteError))
