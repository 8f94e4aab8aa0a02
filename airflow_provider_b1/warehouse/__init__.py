"""The SAP Business One warehouse: star schema, COPY + merge loader, SQLite path, reconciliation.

* :mod:`.entities`: what is read from each SAP entity and where every field lands (one
  declaration per entity).
* :mod:`.schema`: the versioned migrations, applied under a lock by :func:`.schema.ensure_schema_postgres`
  and :func:`.schema.ensure_schema_sqlite`.
* :mod:`.loader`: the flow's sink: pages of records into PostgreSQL (COPY + merge) or SQLite
  (upserts), with a created / updated / unchanged / failed (or restored) outcome per record.
* :mod:`.flow`: the ``sap_b1_to_warehouse`` flow declared on the sync engine.
* :mod:`.reconcile`: SAP and the warehouse compared, entity by entity.
* :mod:`.deletions`: master data deleted in SAP found by comparing keys, marked ``deleted_at`` and
  audited ``deleted``.
"""
