"""Several SAP Business One companies: how a deployment declares them and how a DAG runs per company.

A company is named by the id of the Airflow connection it is read and written through
(``sap_b1_us``): stable however the company is renamed in SAP, and unique in the deployment,
whereas two servers may both hold a ``SBODEMOUS``. That id is what every flow's scope
(:meth:`~airflow_provider_b1.sync.flows.Flow.scoped`) and the warehouse's ``company`` column hold;
the CompanyDB people know a company by is read from the connection (:func:`company_db`).

Each DAG reads its list from an environment variable of its own when its file is parsed (so the
UI shows every company's tasks): ``B1_SAP_COMPANIES`` for the warehouse, ``B1_SERVICETITAN_COMPANIES``,
``B1_SALESFORCE_COMPANIES``, ``B1_TEAMS_COMPANIES`` for the others. The value is the SAP connection
ids separated by commas; where a flow pairs each company with a connection of its own on the other
side (a ServiceTitan tenant per company), an entry is ``<SAP conn id>=<other conn id>``. Unset or
empty, the DAG runs ``sap_b1_default`` alone, with the tasks it always had.

:func:`per_company` builds the DAG's tasks once per company, the default company's directly in the
DAG and each other company's in a task group named after its connection: its own dependencies (a
company whose SAP is down fails only its own tasks), its own task ids (so its cursors, kept in its
tasks' XComs, stay its own whatever the list holds and in whatever order).
The groups are built from the list rather than mapped over it at run time because Airflow does not
map a task inside a mapped task group (the warehouse's key ranges are mapped), and one set of tasks
mapped over every company would let one company's failure stop the others downstream.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: The SAP connection a flow uses when no company is declared.
DEFAULT_SAP_CONN_ID = "sap_b1_default"


@dataclasses.dataclass(frozen=True)
class Company:
    """One declared company.

    :param sap_b1_conn_id: its SAP connection id: the company's name everywhere.
    :param peer_conn_id: the connection of the other system for this company, when the declaration
        pairs one (``sap_b1_eu=servicetitan_eu``); ``None`` otherwise.
    """

    sap_b1_conn_id: str
    peer_conn_id: str | None = None

    @property
    def is_default(self) -> bool:
        return self.sap_b1_conn_id == DEFAULT_SAP_CONN_ID


def _check_conn_id(env: str, name: str) -> str:
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(
            f"{env} holds {name!r}, which is not a connection id of letters, digits, '_' and '-'; "
            "list the SAP connection ids separated by commas."
        )
    return name


def declared_companies(
    env: str = "B1_SAP_COMPANIES", value: str | None = None, *, peer: str | None = None
) -> list[Company]:
    """The companies a DAG runs for, in the order given; only ``sap_b1_default`` when none is declared.

    :param env: the environment variable holding the list.
    :param value: the list as text; the environment variable's when ``None``.
    :param peer: what the connection after ``=`` is (``"ServiceTitan connection"``) for a flow that
        pairs each company with one; ``None`` refuses ``=``.
    :raises ValueError: for a name that is not a plain connection id, a company given twice, a pair
        where the flow takes none, or a peer connection given to two companies.
    """
    text = os.environ.get(env, "") if value is None else value
    companies = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        sap, eq, other = (piece.strip() for piece in entry.partition("="))
        if eq and peer is None:
            raise ValueError(
                f"{env} pairs {entry!r}, but this flow takes only SAP connection ids; list them "
                "separated by commas."
            )
        companies.append(Company(_check_conn_id(env, sap), _check_conn_id(env, other) if eq else None))
    names = [company.sap_b1_conn_id for company in companies]
    if len(set(names)) != len(names):
        raise ValueError(f"{env} names a SAP connection twice ({text!r}); list each company once.")
    peers = [company.peer_conn_id for company in companies if company.peer_conn_id]
    if len(set(peers)) != len(peers):
        raise ValueError(f"{env} gives one {peer} to two companies ({text!r}); each needs its own.")
    return companies or [Company(DEFAULT_SAP_CONN_ID)]


def peer_conn_id(
    options: Mapping[str, Any], option: str, default: str, companies: Callable[[], Sequence[Company]]
) -> str:
    """The connection on the other side of the SAP company that a flow's (merged) options name.

    The options' own ``option``, unless it is ``default`` and the declaration pairs the options'
    SAP connection with another: a replay of ``<flow>@<SAP conn id>`` sets only the SAP connection
    (the audit trail keeps no options), and so reopens the company's own tenant or org. The
    declaration must then read the same where the replay runs as where the DAG is parsed.

    :param companies: reads the flow's declaration.
    :raises ValueError: from ``companies``.
    """
    given = options.get(option) or default
    if given != default:
        return given
    sap = options.get("sap_b1_conn_id") or DEFAULT_SAP_CONN_ID
    paired = (c.peer_conn_id for c in companies() if c.sap_b1_conn_id == sap and c.peer_conn_id)
    return next(paired, None) or given


def per_company(
    companies: Sequence[Company],
    build: Callable[[Company, str], object],
    default: str = DEFAULT_SAP_CONN_ID,
) -> None:
    """Build a DAG's tasks for each company: the default company's directly in the DAG (the DAG it
    always was), every other company's in a task group named after its SAP connection. So adding or
    removing a company, or reordering the list, changes no other company's task ids, and with them
    its cursors (each task's last successful XCom).

    Call inside the DAG's definition. ``build(company, prefix)`` makes one company's tasks;
    ``prefix`` is its group's (``"sap_b1_eu."``, empty for the default company), for the task ids
    that tasks name each other by (an upstream XCom's ``task_ids``).

    :param default: the default company's SAP connection (a flow's default ``sap_b1_conn_id``).
    """
    from airflow.sdk import TaskGroup

    for company in companies:
        name = company.sap_b1_conn_id
        if name == default:
            build(company, "")
            continue
        with TaskGroup(group_id=name, tooltip=f"SAP company of connection {name}"):
            build(company, f"{name}.")


def company_db(sap_b1_conn_id: str) -> str | None:
    """The SAP company database (CompanyDB) a SAP connection logs into, from the connection alone;
    ``None`` when it cannot be read (whatever uses the connection then fails on it, more clearly)."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    try:
        return SapB1Hook(sap_b1_conn_id).settings.company
    except Exception:  # a missing or incomplete connection: reported by its user, not here
        return None
