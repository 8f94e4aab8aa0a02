"""SAP Business One Service Layer: the hook and what it is made of, one concern per module.

* :mod:`.entities`: the one table of entity sets (key, key type, update stamp, dedupe field).
* :mod:`.literals`: OData literals and everything that puts a value in a URL.
* :mod:`.errors`: the typed errors and how replies map onto them.
* :mod:`.batch`: ``$batch`` framing (multipart requests and replies).
* :mod:`.session`: sessions: shared encrypted cache, cross-process login lock, renewal, and
  the ``requests`` auth that applies them to every call.
* :mod:`.reads`: paging, incremental reads and their cursor.
* :mod:`.writes`: idempotent creates, updates, upserts, bulk creates.
* :mod:`.hook`: :class:`SapB1Hook`, which puts them together.

Everything a flow or a DAG needs is importable from here.
"""

from __future__ import annotations

from airflow_provider_b1.hooks.sap_b1.batch import BatchRequest, BatchResult
from airflow_provider_b1.hooks.sap_b1.entities import ENTITIES, TEST_AREAS, EntitySpec, entity_spec
from airflow_provider_b1.hooks.sap_b1.errors import (
    SapB1AmbiguousWriteError,
    SapB1BusinessError,
    SapB1CompanyError,
    SapB1ConflictError,
    SapB1Error,
    SapB1LoginBusyError,
    SapB1LoginError,
    SapB1NotFoundError,
    SapB1PermissionError,
    SapB1RequestTooLongError,
    SapB1ServerError,
    SapB1SessionExpiredError,
    SapB1TLSError,
    SapB1UnauthorizedError,
    SapB1UnreachableError,
    SapB1UserLockedError,
)
from airflow_provider_b1.hooks.sap_b1.hook import DEFAULT_PAGE_SIZE, SapB1Hook
from airflow_provider_b1.hooks.sap_b1.literals import (
    MAX_REQUEST_LINE,
    entity_path,
    odata_any_of,
    odata_eq,
    odata_literal,
    update_stamp_filter,
)
from airflow_provider_b1.hooks.sap_b1.reads import SETTLE_SECONDS, IncrementalRead, ODataNextLinks, SapCursor
from airflow_provider_b1.hooks.sap_b1.session import SapSession, SessionCache, SessionState
from airflow_provider_b1.hooks.sap_b1.writes import LOOKUP_CHUNK, CreateResult

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ENTITIES",
    "LOOKUP_CHUNK",
    "MAX_REQUEST_LINE",
    "SETTLE_SECONDS",
    "TEST_AREAS",
    "BatchRequest",
    "BatchResult",
    "CreateResult",
    "EntitySpec",
    "IncrementalRead",
    "ODataNextLinks",
    "SapB1AmbiguousWriteError",
    "SapB1BusinessError",
    "SapB1CompanyError",
    "SapB1ConflictError",
    "SapB1Error",
    "SapB1Hook",
    "SapB1LoginBusyError",
    "SapB1LoginError",
    "SapB1NotFoundError",
    "SapB1PermissionError",
    "SapB1RequestTooLongError",
    "SapB1ServerError",
    "SapB1SessionExpiredError",
    "SapB1TLSError",
    "SapB1UnauthorizedError",
    "SapB1UnreachableError",
    "SapB1UserLockedError",
    "SapCursor",
    "SapSession",
    "SessionCache",
    "SessionState",
    "entity_path",
    "entity_spec",
    "odata_any_of",
    "odata_eq",
    "odata_literal",
    "update_stamp_filter",
]
