"""The contact facts of a whole population in one statement (careloop.outreach.campaign).

`may_contact` reads a patient's facts one query at a time; a campaign needs them for a
million patients. Here they come from one SELECT over the patients, with the facts
joined in: the preference row, the opt-in for the channel and purpose, the newest
ledger record of the consents that matter (ROW_NUMBER over captured_at, recorded_at:
`consent_current`'s order), the non-urgent contacts in each frequency-cap window
(one GROUP BY), and EXISTS for a verified address and a topic restriction. The
database joins them by hash; Python reads one row per patient, with patient ids as
text (building a million `uuid.UUID` objects would cost more than the query).

Values are compared to the columns as each engine stores them (careloop.core.bulk
adapters); identifiers are fixed names from the models, quoted by the backend.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Model, QuerySet

from careloop.consent.decisions import ADDRESS_FLAG, URGENT_PURPOSES, Ask
from careloop.consent.models import (
    Channel,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    ContactEvent,
    Purpose,
    TopicRestriction,
)
from careloop.core.bulk import adapters
from careloop.patients.models import ContactPoint, ContactSystem, LifecycleStage, Patient

Population = QuerySet[Patient] | Sequence[uuid.UUID]
# Patients per statement when the population is a list of ids: one array parameter on
# PostgreSQL; SQLite's IN list stays under its parameter limit.
ID_CHUNK = {"postgresql": 20_000, "sqlite": 900}


class Facts(NamedTuple):
    """One patient's `ContactFacts` (careloop.consent.decisions), hashable, so the
    patients who share their facts share one `decide`."""

    deceased: bool
    do_not_contact: bool
    topic_barred: bool
    has_address: bool
    channel_consent: ConsentStatus | None
    opt_in: bool | None
    marketing_consent: ConsentStatus | None
    quiet_window: tuple[datetime.time, datetime.time] | None
    time_zone: str
    recent_contacts: tuple[tuple[int, datetime.datetime | None], ...]


def id_chunk() -> int:
    return ID_CHUNK.get(connection.vendor, 900)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def id_text_sql(column: str) -> str:
    """A UUID column as text: `str(uuid)` on PostgreSQL, 32 hex digits on SQLite."""
    return f"{column}::text" if connection.vendor == "postgresql" else column


def id_text(value: str) -> str:
    """A UUID read through `id_text_sql` as `str(uuid)` (what sealing binds a row to)."""
    if len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return value


def id_param(ids: Sequence[str]) -> tuple[str, list[Any]]:
    """`IN`-style SQL for ids given as `str(uuid)`: (the right-hand side, its params)."""
    if connection.vendor == "postgresql":
        return "= ANY(%s::uuid[])", [list(ids)]
    marks = ", ".join(["%s"] * len(ids))
    return f"IN ({marks})", [i.replace("-", "") for i in ids]


def population_filters(patients: Population) -> Iterator[tuple[str, list[Any]]]:
    """Right-hand sides (`IN (...)`, `= ANY(...)`) of conditions on a patient id column
    that together cover the population: one for a queryset, one per chunk of ids."""
    if isinstance(patients, QuerySet):
        sql, params = patients.order_by().values("pk").query.sql_with_params()
        yield f"IN ({sql})", list(params)
        return
    ids = [str(pk) for pk in patients]
    for start in range(0, len(ids), id_chunk()):
        yield id_param(ids[start : start + id_chunk()])


def _dt(value: Any) -> datetime.datetime | None:
    """A datetime as either engine hands it back through a raw cursor, made aware UTC."""
    if value is None or isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=datetime.UTC)  # type: ignore[no-any-return]


def _tm(value: Any) -> datetime.time | None:
    if isinstance(value, str):
        return datetime.time.fromisoformat(value)
    return value  # type: ignore[no-any-return]


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


class _Statement:
    """The facts SELECT, built in the order its parameters appear."""

    def __init__(self, ask: Ask, among: str, among_params: list[Any]) -> None:
        # `among` is the population's condition on a patient id column, without it.
        self.ask, self.among, self.among_params = ask, among, among_params
        self.columns: list[str] = []
        self.joins: list[str] = []
        self.column_params: list[Any] = []
        self.join_params: list[Any] = []
        self.dt = adapters().dt

    def select(self, sql: str, *params: Any) -> None:
        self.columns.append(sql)
        self.column_params += params

    def join(self, sql: str, *params: Any, scoped: bool = False) -> None:
        self.joins.append(sql)
        self.join_params += params
        if scoped:
            self.join_params += self.among_params

    def sql(self) -> tuple[str, list[Any]]:
        statement = (
            f"SELECT {', '.join(self.columns)} FROM {_table(Patient)} p "  # noqa: S608 - quoted model names
            f"{' '.join(self.joins)} WHERE p.id {self.among}"
        )
        return statement, [*self.column_params, *self.join_params, *self.among_params]


def _newest_consent(s: _Statement, kind: ConsentKind | None, alias: str) -> None:
    if kind is None:
        s.select("NULL")
        s.select("NULL")
        return
    s.select(f"{alias}.status")
    s.select(f"{alias}.period_end")
    s.join(
        f"LEFT JOIN (SELECT patient_id, status, period_end FROM (SELECT patient_id, status, "  # noqa: S608 - quoted model names
        "period_end, ROW_NUMBER() OVER (PARTITION BY patient_id "
        "ORDER BY captured_at DESC, recorded_at DESC) AS rn "
        f"FROM {_table(ConsentRecord)} WHERE kind = %s AND scope = '' AND period_start <= %s "
        f"AND patient_id {s.among}) ranked WHERE rn = 1) {alias} "
        f"ON {alias}.patient_id = p.id",
        kind,
        s.dt(s.ask.at),
        scoped=True,
    )


def _recent_contacts(s: _Statement) -> int:
    caps = s.ask.caps()
    if not caps:
        return 0
    at, quote = s.ask.at, connection.ops.quote_name
    column = quote("at")
    windows = []
    window_params: list[Any] = []
    for i, (_, days) in enumerate(caps):
        since = s.dt(at - datetime.timedelta(days=days))
        windows.append(
            f"SUM(CASE WHEN {column} > %s THEN 1 ELSE 0 END) AS n{i}, "
            f"MIN(CASE WHEN {column} > %s THEN {column} END) AS f{i}"
        )
        window_params += [since, since]
        s.select(f"ev.n{i}")
        s.select(f"ev.f{i}")
    longest = max(days for _, days in caps)
    urgent = sorted(URGENT_PURPOSES)
    s.join(
        f"LEFT JOIN (SELECT patient_id, {', '.join(windows)} FROM {_table(ContactEvent)} "  # noqa: S608 - quoted model names
        f"WHERE channel = %s AND {column} > %s AND {column} <= %s "
        f"AND purpose NOT IN ({', '.join(['%s'] * len(urgent))}) "
        f"AND patient_id {s.among} GROUP BY patient_id) ev "
        "ON ev.patient_id = p.id",
        *window_params,
        s.ask.channel,
        s.dt(at - datetime.timedelta(days=longest)),
        s.dt(at),
        *urgent,
        scoped=True,
    )
    return len(caps)


def _statement(ask: Ask, among: str, among_params: list[Any]) -> tuple[str, list[Any], int]:
    s = _Statement(ask, among, among_params)
    s.select(id_text_sql("p.id"))
    s.select("p.deceased_on IS NOT NULL OR p.lifecycle_stage = %s", LifecycleStage.DECEASED)
    s.select("p.time_zone")
    s.select("pref.do_not_contact")
    s.select("pref.quiet_start")
    s.select("pref.quiet_end")
    s.join(f"LEFT JOIN {_table(CommunicationPreference)} pref ON pref.patient_id = p.id")
    if ask.topic is not None:
        s.select(
            f"EXISTS (SELECT 1 FROM {_table(TopicRestriction)} r "  # noqa: S608 - quoted model names
            "WHERE r.patient_id = p.id AND r.topic = %s)",
            ask.topic,
        )
    else:
        s.select("NULL")
    if ask.channel in ADDRESS_FLAG:
        system = ContactSystem.EMAIL if ask.channel == Channel.EMAIL else ContactSystem.PHONE
        flag = connection.ops.quote_name(ADDRESS_FLAG[ask.channel])
        s.select(
            f"EXISTS (SELECT 1 FROM {_table(ContactPoint)} c WHERE c.patient_id = p.id "  # noqa: S608 - quoted model names
            f"AND c.system = %s AND c.verified AND c.{flag})",
            system,
        )
    else:
        s.select("NULL")
    s.select("o.opted_in")
    s.join(
        f"LEFT JOIN {_table(ChannelOptIn)} o ON o.patient_id = p.id "
        "AND o.channel = %s AND o.purpose = %s",
        ask.channel,
        ask.purpose,
    )
    _newest_consent(s, ask.consent_kind, "k")
    marketing = ConsentKind.MARKETING if ask.purpose == Purpose.MARKETING else None
    _newest_consent(s, marketing, "m")
    caps = _recent_contacts(s)
    sql, params = s.sql()
    return sql, params, caps


_STATUSES = {value: ConsentStatus(value) for value in ConsentStatus.values}


def _status(value: Any, period_end: Any, at: datetime.datetime) -> ConsentStatus | None:
    """`consent_current`'s answer from the newest record's status and period end."""
    if value is None:
        return None
    end = _dt(period_end)
    if end is not None and end <= at:
        return ConsentStatus.EXPIRED
    return _STATUSES[value]


def contact_facts(patients: Population, ask: Ask) -> dict[str, Facts]:
    """Every patient's contact facts for `ask`, by patient id as `str(uuid)`."""
    from careloop.consent.decisions import own_quiet_window

    facts: dict[str, Facts] = {}
    for among, among_params in population_filters(patients):
        sql, params, caps = _statement(ask, among, among_params)
        none_recent: tuple[tuple[int, datetime.datetime | None], ...] = ((0, None),) * caps
        with connection.cursor() as cursor:
            # Identifiers come from the models through quote_name; values are parameters.
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        for row in rows:
            (pid, deceased, zone, dnc, quiet_start, quiet_end, barred, addressed, opted_in) = row[
                :9
            ]
            channel_status, marketing_status = row[9], row[11]
            recent = none_recent
            if caps and row[13] is not None:
                recent = tuple(
                    (int(row[13 + 2 * i] or 0), _dt(row[14 + 2 * i])) for i in range(caps)
                )
            facts[id_text(pid)] = Facts(
                deceased=bool(deceased),
                do_not_contact=bool(dnc),
                topic_barred=bool(barred),
                has_address=bool(addressed),
                channel_consent=_status(channel_status, row[10], ask.at),
                opt_in=_flag(opted_in),
                marketing_consent=_status(marketing_status, row[12], ask.at),
                quiet_window=own_quiet_window(_tm(quiet_start), _tm(quiet_end))
                if dnc is not None
                else None,
                time_zone=zone,
                recent_contacts=recent,
            )
    return facts
