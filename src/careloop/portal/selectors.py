"""Read paths of the portal that other apps use (consent decisions, the push channel)."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from careloop.portal.models import PushSubscription


def push_subscribed(*, patient_id: uuid.UUID) -> bool:
    """Has the patient a live push subscription, i.e. an address for the push channel?"""
    return PushSubscription.objects.filter(patient_id=patient_id, revoked_at__isnull=True).exists()


def push_subscriptions_live(*, patient_id: uuid.UUID) -> list[PushSubscription]:
    return list(
        PushSubscription.objects.filter(patient_id=patient_id, revoked_at__isnull=True).order_by(
            "created_at", "id"
        )
    )


def push_subscribed_ids(scope: Q) -> QuerySet[PushSubscription, uuid.UUID]:
    """Of the patients in `scope` (a filter on `patient_id`), those with a live
    subscription: the set-based form of `push_subscribed`, for population decisions."""
    return (
        PushSubscription.objects.filter(scope, revoked_at__isnull=True)
        .order_by()
        .values_list("patient_id", flat=True)
        .distinct()
    )
