"""Value sets: shipped with careloop, loaded by OID, from the published files too."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command

from careloop.caregaps.models import ValueSet, ValueSetCode
from careloop.caregaps.terminology import TerminologyError, oid_of, valuesets_ensure

pytestmark = pytest.mark.django_db

MAMMOGRAPHY = "2.16.840.1.113883.3.464.1003.108.12.1018"


def test_the_shipped_expansions_load_with_nested_codes_and_by_oid() -> None:
    out = io.StringIO()

    call_command("caregaps", "load-valuesets", stdout=out)

    assert "132 value sets" in out.getvalue()
    assert ValueSet.objects.get(oid=MAMMOGRAPHY).url.endswith(MAMMOGRAPHY)
    assert ValueSetCode.objects.filter(value_set_id=MAMMOGRAPHY).count() > 5
    assert oid_of(f"https://cts.nlm.nih.gov/fhir/ValueSet/{MAMMOGRAPHY}") == MAMMOGRAPHY


def test_a_folder_of_valueset_files_loads_and_reloading_replaces(tmp_path: Path) -> None:
    resource = {
        "resourceType": "ValueSet",
        "url": "http://cts.nlm.nih.gov/fhir/ValueSet/1.2.3",
        "version": "1",
        "title": "Nested",
        "expansion": {
            "contains": [
                {"system": "http://loinc.org", "code": "1-1"},
                {"abstract": True, "contains": [{"system": "http://loinc.org", "code": "2-2"}]},
            ]
        },
    }
    (tmp_path / "1.2.3.json").write_bytes(orjson.dumps(resource))
    call_command("caregaps", "load-valuesets", str(tmp_path), stdout=io.StringIO())
    resource["expansion"] = {"contains": [{"system": "http://loinc.org", "code": "3-3"}]}
    (tmp_path / "1.2.3.json").write_bytes(orjson.dumps(resource))

    call_command("caregaps", "load-valuesets", str(tmp_path), stdout=io.StringIO())

    codes = set(ValueSetCode.objects.filter(value_set_id="1.2.3").values_list("code", flat=True))
    assert codes == {"3-3"}


def test_a_measure_naming_an_unknown_value_set_is_refused_with_its_oid() -> None:
    with pytest.raises(TerminologyError, match=r"9\.9\.9"):
        valuesets_ensure(oids={MAMMOGRAPHY, "9.9.9"})
    # The shipped ones were loaded on the way.
    assert ValueSet.objects.filter(oid=MAMMOGRAPHY).exists()
