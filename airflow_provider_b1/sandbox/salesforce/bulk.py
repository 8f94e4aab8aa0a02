"""Bulk API 2.0 jobs: ingest (insert, update, upsert, delete, hardDelete) and query.

Ingest: ``POST jobs/ingest`` creates an ``Open`` job; ``PUT jobs/ingest/<id>/batches`` uploads
CSV (201, several uploads append rows under the same header); ``PATCH`` with ``{"state":
"UploadComplete"}`` closes it (``Aborted`` abandons it). The job then shows ``UploadComplete``,
``InProgress`` after half the processing delay and ``JobComplete`` (or ``Failed``) after all of
it, whether or not anyone polls; its rows are written 200 to a transaction, each row on its own
(a failing row fails alone). ``successfulResults/`` (``sf__Id``, ``sf__Created``, the row),
``failedResults/`` (``sf__Id``, ``sf__Error`` as ``CODE:message:fields --``, the row) and
``unprocessedrecords/`` (rows an abort left) are CSV, every value quoted. An empty cell leaves a
field alone, ``#N/A`` empties it; a header ``Account.SAP_Card_Code__c`` sets the reference by
the parent's external id. A header naming no field fails the whole job (``InvalidBatch : Field
name not found : X``).

Query: ``POST jobs/query`` (``query`` or ``queryAll``) checks the SOQL at once (no child
subqueries, aggregates, OFFSET or FIELDS(), as in the real API); after the delay the job is
``JobComplete`` and ``GET jobs/query/<id>/results?maxRecords=N&locator=L`` pages through the
rows as CSV, with ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` (the next locator, or
``null`` on the last page). Nulls are empty cells; datetimes print ``2024-05-01T12:00:00.000Z``.
"""

from __future__ import annotations

import base64
import csv
import io
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_b1.sandbox.salesforce import ids
from airflow_provider_b1.sandbox.salesforce.schema import SObject, ValueError_, format_datetime, from_csv
from airflow_provider_b1.sandbox.salesforce.store import RecordError, Store

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
TERMINAL = ("JobComplete", "Failed", "Aborted")
CHUNK = 200


class BulkError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Job:
    id: str
    kind: str  # ingest | query
    operation: str
    object: str
    created_by: str
    created_ms: int
    api_version: str
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    external_id_field: str | None = None
    state: str = "Open"
    modstamp_ms: int = 0
    closed_at: float | None = None  # monotonic time of UploadComplete
    delay: float = 0.5
    header: list[str] | None = None
    rows: list[list[str]] = field(default_factory=list)
    successful: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str | None = None
    processing_ms: int = 0
    query: Any = None  # bound SOQL of a query job
    result_header: list[str] = field(default_factory=list)
    result_rows: list[list[str]] = field(default_factory=list)

    @property
    def delimiter(self) -> str:
        return DELIMITERS[self.column_delimiter]

    @property
    def newline(self) -> str:
        return LINE_ENDINGS[self.line_ending]

    def info(self, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created_ms),
            "systemModstamp": format_datetime(self.modstamp_ms or self.created_ms),
            "state": self.state,
        }
        if self.kind == "ingest":
            out["externalIdFieldName"] = self.external_id_field
        out.update(
            {
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
            }
        )
        if self.kind == "ingest":
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        out["lineEnding"] = self.line_ending
        out["columnDelimiter"] = self.column_delimiter
        if full:
            processed = (
                len(self.successful) + len(self.failed) if self.kind == "ingest" else len(self.result_rows)
            )
            out.update(
                {
                    "jobType": "V2Ingest" if self.kind == "ingest" else "V2Query",
                    "numberRecordsProcessed": processed,
                    "retries": 0,
                    "totalProcessingTime": self.processing_ms,
                }
            )
            if self.kind == "ingest":
                out.update(
                    {
                        "numberRecordsFailed": len(self.failed),
                        "apiActiveProcessingTime": self.processing_ms,
                        "apexProcessingTime": 0,
                    }
                )
            else:
                out["isPkChunkingSupported"] = True
            if self.error_message:
                out["errorMessage"] = self.error_message
        return out


def _csv(rows: list[list[str]], delimiter: str, newline: str, quote_all: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator=newline,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerows(rows)
    return buffer.getvalue()


def parse_csv(job: Job, text: str) -> None:
    """Append an upload's rows to the job (the first upload's header is the job's)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter)
    rows = [row for row in reader if row and any(cell != "" for cell in row)]
    if not rows:
        return
    header, body = rows[0], rows[1:]
    if job.header is None:
        job.header = header
    elif [h.strip().lower() for h in header] != [h.strip().lower() for h in job.header]:
        raise BulkError(400, "INVALIDBATCH", "InvalidBatch : The header of every upload must be the same")
    for row in body:
        if len(row) != len(header):
            raise BulkError(
                400,
                "INVALIDBATCH",
                f"InvalidBatch : Wrong number of columns: {len(row)}, expected {len(header)}",
            )
    job.rows.extend(body)


def advance(job: Job, store: Store, now: float | None = None) -> None:
    """Move a closed job along its timeline; process it once its delay has passed."""
    if job.closed_at is None or job.state in TERMINAL:
        return
    now = time.monotonic() if now is None else now
    elapsed = now - job.closed_at
    if job.state == "UploadComplete" and elapsed >= job.delay / 2:
        job.state = "InProgress"
        job.modstamp_ms = store.now_ms()
    if elapsed >= job.delay:
        started = time.monotonic()
        with store.lock:
            if job.kind == "ingest":
                _process_ingest(job, store)
            else:
                _process_query(job, store)
        job.processing_ms = int((time.monotonic() - started) * 1000)
        job.modstamp_ms = store.now_ms()


def _columns(job: Job, obj: SObject, store: Store) -> list[tuple[str, Any]]:
    """Each header cell as ("field", Field) or ("ref", (reference Field, parent ext Field))."""
    assert job.header is not None
    out: list[tuple[str, Any]] = []
    for name in job.header:
        name = name.strip()
        if "." in name:
            rel, _, ext_name = name.partition(".")
            ref = obj.relationships.get(rel.lower())
            parent = store.schema[ref.reference_to[0]] if ref is not None else None
            ext = parent.field(ext_name) if parent is not None else None
            if ref is None or ext is None or not (ext.external_id or ext.type == "id"):
                raise BulkError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {name}")
            out.append(("ref", (ref, ext)))
            continue
        f = obj.field(name)
        if f is None:
            raise BulkError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {name}")
        out.append(("field", f))
    return out


def _process_ingest(job: Job, store: Store) -> None:
    obj = store.schema[job.object]
    try:
        if job.header is None:
            raise BulkError(400, "INVALIDBATCH", "InvalidBatch : Empty CSV file")
        columns = _columns(job, obj, store)
        names = [c[1].name if c[0] == "field" else None for c in columns]
        if job.operation in ("delete", "hardDelete") and [n.lower() for n in job.header] != ["id"]:
            raise BulkError(
                400, "INVALIDBATCH", "InvalidBatch : The 'delete' batch must contain only 'Id' column"
            )
        if job.operation == "update" and "Id" not in names:
            raise BulkError(400, "INVALIDBATCH", "InvalidBatch : Field name not found : Id")
        ext_field = None
        if job.operation == "upsert":
            ext_field = obj.field(job.external_id_field or "")
            if ext_field is None or not (ext_field.external_id or ext_field.type == "id"):
                raise BulkError(
                    400,
                    "INVALIDBATCH",
                    f"InvalidBatch : Field name provided, {job.external_id_field} does not match an External ID, "
                    f"Salesforce Id, or indexed field for {obj.name}",
                )
            if ext_field.name not in names:
                raise BulkError(
                    400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {ext_field.name}"
                )
    except BulkError as exc:
        job.state = "Failed"
        job.error_message = exc.message
        job.unprocessed = list(job.rows)
        return
    for start in range(0, len(job.rows), CHUNK):
        txn = store.transaction()
        for row in job.rows[start : start + CHUNK]:
            record_id = ""
            try:
                values: dict[str, Any] = {}
                refs: dict[str, tuple[str, Any]] = {}
                for (kind, target), cell in zip(columns, row):
                    if cell == "":
                        continue
                    if kind == "ref":
                        ref, ext = target
                        if cell == "#N/A":
                            values[ref.name] = None
                        else:
                            refs[ref.name] = (ext.name, cell)
                        continue
                    try:
                        values[target.name] = from_csv(target, cell)
                    except ValueError_ as exc:
                        raise RecordError(
                            "INVALID_TYPE_ON_FIELD_IN_RECORD", exc.message, [target.name]
                        ) from None
                if job.operation == "insert":
                    record_id = txn.insert(job.object, values, refs)
                    created = True
                elif job.operation == "update":
                    record_id = ids.normalize(values.get("Id")) or ""
                    record_id = txn.update(job.object, values.get("Id"), values, refs)
                    created = False
                elif job.operation == "upsert":
                    assert ext_field is not None
                    key = values.get(ext_field.name)
                    if ext_field.type == "id":
                        record_id = ids.normalize(key) or ""
                    record_id, created = txn.upsert(job.object, ext_field.name, key, values, refs)
                else:
                    record_id = ids.normalize(values.get("Id")) or ""
                    record_id = txn.delete(job.object, values.get("Id"))
                    created = False
                job.successful.append((record_id, created, row))
            except RecordError as exc:
                where = ":".join(exc.fields)
                job.failed.append((record_id, f"{exc.code}:{exc.message}:{where} --", row))
        txn.commit()
    job.state = "JobComplete"


def _process_query(job: Job, store: Store) -> None:
    from airflow_provider_b1.sandbox.salesforce.soql import Printer, Runner

    runner = Runner(store, store.now_ms(), include_deleted=job.operation == "queryAll")
    printer = Printer(runner, job.api_version, store.schema)
    rows = runner.select(job.query)
    job.result_header = Printer.csv_header(job.query)
    job.result_rows = [printer.csv_row(job.query, r) for r in rows]
    job.state = "JobComplete"


def ingest_results(job: Job, which: str) -> str:
    header = job.header or []
    if which == "successful":
        rows = [["sf__Id", "sf__Created", *header]] + [
            [i, "true" if c else "false", *row] for i, c, row in job.successful
        ]
    elif which == "failed":
        rows = [["sf__Id", "sf__Error", *header]] + [[i, e, *row] for i, e, row in job.failed]
    else:
        rows = [header, *job.unprocessed] if header else []
    return _csv(rows, job.delimiter, job.newline)


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int | None:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded, validate=True).decode())
    except (ValueError, UnicodeDecodeError):
        return None


def query_results(job: Job, locator: str | None, max_records: int | None) -> tuple[str, str, int]:
    """(CSV page, next locator or "null", records in the page)."""
    start = 0
    if locator:
        offset = decode_locator(locator)
        if offset is None or not 0 <= offset <= len(job.result_rows):
            raise BulkError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}")
        start = offset
    end = len(job.result_rows) if not max_records else min(len(job.result_rows), start + max_records)
    page = job.result_rows[start:end]
    text = _csv([job.result_header, *page], job.delimiter, job.newline)
    return text, encode_locator(end) if end < len(job.result_rows) else "null", len(page)
