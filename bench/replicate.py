"""Make a large PostgreSQL practice from a smaller one: copies of every patient and
clinical fact, re-keyed.

`careloop demo` writes about 130-300 patients/s on this machine, so a 1,000,000
patient practice takes one to two hours. The measures read only patients (birth date,
sex, merge state) and clinical facts, so `replicate` builds the big practice in
minutes: the database is created from the small one as a template, then each
patient that is not merged is copied `copies - 1` times with a new id derived from
the old (md5 of id and copy number), and each of their facts with it (source ids and
encounter references suffixed with the copy number, so the copies keep their own
identity and their own encounter links). The distributions (ages, sexes, facts per
patient, rates) are the small practice's, exactly.

Encrypted columns are copied as they are: they were bound to the original row's id,
so the copies' names and addresses cannot be decrypted. Nothing the measures read is
encrypted; the bench reports say which practices were made this way.
"""

from __future__ import annotations

from typing import Any

FACT = "clinical_clinicalfact"
PATIENT = "patients_patient"


def _columns(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _copy(expr: str) -> str:
    """A copy's id from the original's and the copy number `k`."""
    return f"md5({expr}::text || ':' || k)::uuid"


def replicate(connection: Any, *, copies: int) -> dict[str, int]:
    """Copy every patient and its facts `copies - 1` times (psycopg connection to the
    new database, autocommit off). Returns the row counts afterwards."""
    with connection.cursor() as cursor:
        patient_columns = _columns(cursor, PATIENT)
        select = {c: f"p.{c}" for c in patient_columns}
        select["id"] = _copy("p.id")
        cursor.execute(
            f"INSERT INTO {PATIENT} ({', '.join(patient_columns)}) "  # noqa: S608 - catalog names
            f"SELECT {', '.join(select[c] for c in patient_columns)} "
            f"FROM {PATIENT} p CROSS JOIN generate_series(2, %s) k "
            "WHERE p.merged_into_id IS NULL",
            [copies],
        )
        # Indexes are built once at the end: maintaining five per copied row costs
        # several times more than the copy.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [FACT],
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        fact_columns = [c for c in _columns(cursor, FACT) if c != "id"]
        select = {c: f"f.{c}" for c in fact_columns}
        select["patient_id"] = _copy("f.patient_id")
        select["source_id"] = "f.source_id || '~' || k"
        select["encounter_ref"] = (
            "CASE WHEN f.encounter_ref = '' THEN '' ELSE f.encounter_ref || '~' || k END"
        )
        select["subject_ref"] = (
            "CASE WHEN f.subject_ref = '' THEN '' ELSE f.subject_ref || '~' || k END"
        )
        cursor.execute(
            f"INSERT INTO {FACT} ({', '.join(fact_columns)}) "  # noqa: S608 - catalog names
            f"SELECT {', '.join(select[c] for c in fact_columns)} "
            f"FROM {FACT} f JOIN {PATIENT} p ON p.id = f.patient_id "
            "CROSS JOIN generate_series(2, %s) k WHERE p.merged_into_id IS NULL",
            [copies],
        )
        connection.commit()  # the foreign keys' deferred checks run here
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        connection.commit()
        cursor.execute(f"SELECT (SELECT count(*) FROM {PATIENT}), (SELECT count(*) FROM {FACT})")  # noqa: S608
        patients, facts = cursor.fetchone()
    return {"patients": int(patients), "facts": int(facts)}
