"""Key rotation: add a field key and re-seal every encrypted column under it.

Runs while the application keeps serving. Rows are walked in primary-key order in
batches; each value is re-sealed with a compare-and-swap UPDATE (`WHERE col = old`),
so a value the application changed in the meantime is left alone and picked up by the
next pass. Other processes learn about the new key within `ACTIVE_KEY_TTL_SECONDS`;
after waiting that long, a final pass finds anything they sealed under the old key.
Re-running after an interruption simply continues: a row already under the new key is
skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models, transaction

from careloop.core.clock import now
from careloop.security import crypto
from careloop.security.fields import EncryptedTextField
from careloop.security.keys import add_field_key
from careloop.security.models import DataKey


@dataclass
class RotationReport:
    new_version: int
    resealed: int = 0
    skipped_changed: int = 0
    passes: int = 0


def encrypted_columns() -> Iterator[tuple[type[models.Model], list[EncryptedTextField]]]:
    """Every model with encrypted fields, and those fields."""
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if fields:
            yield model, fields


def _reseal_model(
    model: type[models.Model], fields: list[EncryptedTextField], *, version: int, batch: int
) -> tuple[int, int]:
    table = model._meta.db_table
    pk = model._meta.pk
    if pk is None:  # abstract models have no primary key; apps.get_models() skips them
        return 0, 0
    quote = connection.ops.quote_name
    resealed = skipped = 0
    last = None
    while True:
        rows = model._default_manager.order_by(pk.attname)
        if last is not None:
            rows = rows.filter(**{f"{pk.attname}__gt": last})
        page = list(rows.values_list(pk.attname, *[f.attname for f in fields])[:batch])
        if not page:
            return resealed, skipped
        last = page[-1][0]
        with transaction.atomic(), connection.cursor() as cursor:
            for row in page:
                row_id, values = row[0], row[1:]
                db_id = pk.get_db_prep_value(row_id, connection)
                for field, sealed in zip(fields, values, strict=True):
                    if sealed is None or crypto.sealed_version(bytes(sealed)) == version:
                        continue
                    plaintext = crypto.open_sealed(
                        bytes(sealed), table=table, column=field.column, row_id=row_id
                    )
                    fresh = crypto.seal(
                        plaintext, table=table, column=field.column, row_id=row_id, version=version
                    )
                    cursor.execute(
                        f"UPDATE {quote(table)} SET {quote(field.column)} = %s "  # noqa: S608
                        f"WHERE {quote(pk.column)} = %s AND {quote(field.column)} = %s",
                        [fresh, db_id, bytes(sealed)],
                    )
                    if cursor.rowcount == 1:
                        resealed += 1
                    else:
                        skipped += 1


def rows_not_under(version: int) -> int:
    """How many encrypted values are sealed under any key but `version`."""
    count = 0
    for model, fields in encrypted_columns():
        for values in model._default_manager.values_list(*[f.attname for f in fields]).iterator(
            chunk_size=5000
        ):
            count += sum(
                1
                for sealed in values
                if sealed is not None and crypto.sealed_version(bytes(sealed)) != version
            )
    return count


def keys_rotate(
    *,
    batch: int = 1000,
    settle_seconds: float = crypto.ACTIVE_KEY_TTL_SECONDS + 1,
    progress: Callable[[str], None] = lambda message: None,
) -> RotationReport:
    """Add a field key, re-seal everything under it, then retire the older field keys."""
    key = add_field_key()
    crypto.keyring.reset()
    report = RotationReport(new_version=key.version)
    started = time.monotonic()
    while True:
        report.passes += 1
        for model, fields in encrypted_columns():
            progress(f"pass {report.passes}: {model._meta.label}")
            resealed, skipped = _reseal_model(model, fields, version=key.version, batch=batch)
            report.resealed += resealed
            report.skipped_changed += skipped
        waited = time.monotonic() - started
        if waited < settle_seconds:
            # Other processes may still seal under the old key until they refresh.
            time.sleep(settle_seconds - waited)
            continue
        if rows_not_under(key.version) == 0:
            break
    DataKey.objects.filter(purpose=DataKey.Purpose.FIELD, version__lt=key.version).filter(
        retired_at__isnull=True
    ).update(retired_at=now())
    return report
