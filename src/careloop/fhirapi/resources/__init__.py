"""The FHIR types careloop serves; importing this package fills the registry.

To serve another type, add a module that calls `careloop.fhirapi.registry.register`
and import it here.
"""

from careloop.fhirapi.resources import (  # noqa: F401 - imported to register
    appointment,
    auditevent,
    consent,
    coverage,
    measurereport,
    observation,
    patient,
)
