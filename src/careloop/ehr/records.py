"""The record handlers for every non-clinical FHIR resource careloop maps.

Importing this module fills `careloop.ehr.handlers.RECORD_HANDLERS`:

| resource | becomes |
| --- | --- |
| Patient | a careloop patient (careloop.ehr.identity: matching, review queue) |
| RelatedPerson | a relationship when the person is a careloop patient; else remembered |
| CareTeam | remembered only (careloop's care team is its own staff) |
| Coverage | a coverage (member id encrypted); waits for its patient |
| Consent | a consent-ledger record when the kind is clear; else remembered |
| Organization | remembered only |
| Location | a scheduling location |
| Practitioner | a provider, by NPI; without an NPI remembered only |
| PractitionerRole | the provider's location and specialty |
| Appointment | an appointment (source "ehr"); waits for its patient |

"Remembered" means the source record is kept (identity, version) with no careloop row.
"""

from __future__ import annotations

from careloop.ehr import records_patients, records_practice

__all__ = ["records_patients", "records_practice"]
