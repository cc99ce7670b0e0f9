"""Appointment, from careloop's scheduling (FHIR R4 base; US Core has no profile)."""

from __future__ import annotations

from typing import Any, Final

from careloop.fhirapi.params import date_param, token_param
from careloop.fhirapi.registry import Include, Readable, instant, register
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.permissions import Resource

APPOINTMENT_TYPE: Final = "urn:careloop:appointment-type"
_STATUS: Final = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CHECKED_IN: "arrived",
    AppointmentStatus.FULFILLED: "fulfilled",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
}
_SEARCH_STATUS: dict[str, list[str]] = {}
for _ours, _theirs in _STATUS.items():
    _SEARCH_STATUS.setdefault(_theirs, []).append(str(_ours))


def appointment_resource(appointment: Appointment, readable: Readable) -> dict[str, Any]:
    kind = appointment.appointment_type
    return {
        "resourceType": "Appointment",
        "id": str(appointment.pk),
        "status": _STATUS[AppointmentStatus(appointment.status)],
        "serviceType": [
            {"coding": [{"system": APPOINTMENT_TYPE, "code": kind.code, "display": kind.name}]}
        ],
        "start": instant(appointment.start),
        "end": instant(appointment.end),
        "minutesDuration": int((appointment.end - appointment.start).total_seconds() // 60),
        "created": instant(appointment.created_at),
        "participant": [
            {"actor": {"reference": f"Patient/{appointment.patient_id}"}, "status": "accepted"},
            {"actor": {"display": appointment.provider.display_name}, "status": "accepted"},
            {"actor": {"display": appointment.location.name}, "status": "accepted"},
        ],
    }


PROVIDER = register(
    type="Appointment",
    resource=Resource.APPOINTMENTS,
    rows=lambda: Appointment.objects.select_related("appointment_type", "provider", "location"),
    serialize=appointment_resource,
    params=[
        date_param("date", "start"),
        token_param("status", "status", mapping=_SEARCH_STATUS),
    ],
    patient_column="patient_id",
    includes={"Appointment:patient": Include(target="Patient", column="patient_id")},
)
