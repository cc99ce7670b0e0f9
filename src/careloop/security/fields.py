"""Model fields for PHI class I: `EncryptedTextField` and its `BlindIndexField`.

An encrypted field holds plaintext `str` in Python and a sealed value (crypto.seal)
in the database. Sealing happens in `pre_save`, where the row is known, because the
ciphertext is bound to its table, column and primary key; opening happens lazily on
attribute access for the same reason. Paths that skip `pre_save` (`QuerySet.update`,
`bulk_update`, lookups on the column) are refused instead of writing plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from careloop.security import crypto, normalize


class Sealed(bytes):
    """Ciphertext as loaded from the database, not yet opened."""


def _plain_key(attname: str) -> str:
    return f"_plain_{attname}"


class SealedAttribute(DeferredAttribute):
    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        raw = super().__get__(instance, cls)
        if not isinstance(raw, Sealed):
            return raw
        cached = instance.__dict__.get(_plain_key(self.field.attname))
        if cached is not None and cached[0] is raw:
            return cached[1]
        plaintext = crypto.open_sealed(
            raw, table=self.field.model._meta.db_table, column=self.field.column, row_id=instance.pk
        )
        instance.__dict__[_plain_key(self.field.attname)] = (raw, plaintext)
        return plaintext

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.BinaryField):  # type: ignore[type-arg]
    """Class-I text, sealed with AES-256-GCM bound to (table, column, row id)."""

    descriptor_class = SealedAttribute

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Sealed | None:
        if value is None:
            return None
        return Sealed(bytes(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        raw = model_instance.__dict__.get(self.attname)
        if raw is None or isinstance(raw, Sealed):
            return raw
        if not isinstance(raw, str):
            raise TypeError(
                f"{self.model.__name__}.{self.name} takes text, not {type(raw).__name__}"
            )
        if model_instance.pk is None:
            raise ValueError(f"{self.model.__name__} needs its primary key set before sealing")
        sealed = Sealed(
            crypto.seal(
                raw, table=self.model._meta.db_table, column=self.column, row_id=model_instance.pk
            )
        )
        model_instance.__dict__[self.attname] = sealed
        model_instance.__dict__[_plain_key(self.attname)] = (sealed, raw)
        return sealed

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if isinstance(value, str):
            raise TypeError(
                f"{self.model.__name__}.{self.name} is encrypted per row: save it through the "
                "model (or crypto.seal), never through update(), bulk_update() or a lookup"
            )
        return super().get_db_prep_value(value, connection, prepared)

    def formfield(self, **kwargs: Any) -> Any:  # type: ignore[override]
        from django import forms

        return forms.CharField(required=not self.blank, **kwargs)


def _contact(value: str) -> str:
    return normalize.email(value) if "@" in value else normalize.phone(value)


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "name": normalize.name,
    "contact": _contact,
    "phone": normalize.phone,
    "email": normalize.email,
    "identifier": normalize.identifier,
}


def blind_value(kind: str, value: str | None) -> bytes | None:
    """The blind index of `value` as `kind`, or None for a value that cannot be normalised."""
    if value is None or not value.strip():
        return None
    try:
        normalized = NORMALIZERS[kind](value)
    except normalize.NormalizationError:
        return None
    if not normalized:
        return None
    return crypto.blind_index(normalized, kind=kind)


class BlindIndexField(models.BinaryField):  # type: ignore[type-arg]
    """HMAC of the normalised value of another (encrypted) field, for exact-match search."""

    def __init__(self, *args: Any, source: str, kind: str, **kwargs: Any) -> None:
        if kind not in NORMALIZERS:
            raise ValueError(f"unknown blind index kind {kind!r}")
        self.source = source
        self.kind = kind
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("max_length", crypto.BLIND_BYTES)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs["kind"] = self.kind
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = blind_value(self.kind, getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value
