"""The permission table itself, and docs/permissions.md generated from it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from careloop.security.models import Role
from careloop.security.permissions import (
    CONSOLE,
    TABLE,
    Op,
    Resource,
    allowed,
    is_staff_role,
    markdown_table,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
GENERATED = re.compile(
    r"(<!-- BEGIN GENERATED: permission table -->\n).*?(<!-- END GENERATED: permission table -->)",
    re.S,
)

PATIENT_DATA = (
    Resource.DEMOGRAPHICS,
    Resource.CONTACT,
    Resource.COVERAGE,
    Resource.APPOINTMENTS,
    Resource.CLINICAL,
    Resource.NOTES,
    Resource.CONSENT,
    Resource.MESSAGES,
)


def test_every_role_and_the_console_operator_have_a_row() -> None:
    assert set(TABLE) == {*Role, CONSOLE}
    assert CONSOLE not in Role.values  # no staff account can be given the console's row


@pytest.mark.parametrize("role", [Role.MARKETING, Role.FRONT_DESK, Role.ADMIN, Role.ANALYST])
def test_roles_outside_care_never_see_clinical_facts_or_notes(role: Role) -> None:
    for op in Op:
        assert not allowed(role, op, Resource.CLINICAL)
        assert not allowed(role, op, Resource.NOTES)


def test_front_desk_sees_demographics_coverage_and_appointments() -> None:
    for resource in (Resource.DEMOGRAPHICS, Resource.COVERAGE, Resource.APPOINTMENTS):
        assert allowed(Role.FRONT_DESK, Op.READ, resource)
        assert allowed(Role.FRONT_DESK, Op.WRITE, resource)


def test_analyst_sees_aggregates_and_deidentified_rows_only() -> None:
    granted = {
        resource for resource in Resource for op in Op if allowed(Role.ANALYST, op, resource)
    }
    assert granted == {Resource.AGGREGATES, Resource.DEIDENTIFIED}


def test_auditor_sees_the_audit_log_only() -> None:
    granted = {
        resource for resource in Resource for op in Op if allowed(Role.AUDITOR, op, resource)
    }
    assert granted == {Resource.AUDIT}
    assert allowed(Role.AUDITOR, Op.EXPORT, Resource.AUDIT)
    assert not allowed(Role.AUDITOR, Op.WRITE, Resource.AUDIT)


def test_nobody_may_write_the_audit_log() -> None:
    assert not any(allowed(row, Op.WRITE, Resource.AUDIT) for row in TABLE)


def test_only_admin_and_the_console_manage_users_configuration_and_keys() -> None:
    for resource in (Resource.USERS, Resource.CONFIG, Resource.KEYS):
        assert {row for row in TABLE if allowed(row, Op.WRITE, resource)} == {Role.ADMIN, CONSOLE}


def test_the_console_loads_patient_data_never_reads_it_and_exports_only_measure_reports() -> None:
    for resource in PATIENT_DATA:
        assert not allowed(CONSOLE, Op.READ, resource)
        # The one export: `careloop caregaps report` (FHIR MeasureReports), clinical.
        assert allowed(CONSOLE, Op.EXPORT, resource) == (resource == Resource.CLINICAL)
    assert allowed(CONSOLE, Op.WRITE, Resource.DEMOGRAPHICS)
    assert not allowed(CONSOLE, Op.WRITE, Resource.NOTES)


def test_the_console_verifies_the_audit_log_but_does_not_export_it() -> None:
    assert allowed(CONSOLE, Op.READ, Resource.AUDIT)
    assert not allowed(CONSOLE, Op.EXPORT, Resource.AUDIT)


def test_admin_has_no_routine_clinical_access() -> None:
    for resource in (Resource.CLINICAL, Resource.NOTES, Resource.MESSAGES):
        assert not allowed(Role.ADMIN, Op.READ, resource)


def test_clinician_reads_consent_but_does_not_record_it() -> None:
    assert allowed(Role.CLINICIAN, Op.READ, Resource.CONSENT)
    assert not allowed(Role.CLINICIAN, Op.WRITE, Resource.CONSENT)


def test_a_patient_account_has_nothing_in_the_staff_app() -> None:
    assert not any(allowed(Role.PATIENT, op, resource) for op in Op for resource in Resource)
    assert not is_staff_role(Role.PATIENT)
    assert all(is_staff_role(role) for role in Role if role != Role.PATIENT)


def test_patient_data_export_is_not_routine_for_any_role_but_marketing_contact_lists() -> None:
    exporters = {
        (role, resource)
        for role in TABLE
        for resource in PATIENT_DATA
        if allowed(role, Op.EXPORT, resource)
    }
    # The console's MeasureReport export (`careloop caregaps report`) is for payer
    # exchange and audits, each one audited.
    # The care coordinator's recall worklist CSV (careloop.caregaps.views.export_csv).
    assert exporters == {
        (Role.MARKETING, Resource.CONTACT),
        (CONSOLE, Resource.CLINICAL),
        (Role.CARE_COORDINATOR, Resource.CLINICAL),
    }


def test_unknown_role_may_do_nothing() -> None:
    assert not allowed("superuser", Op.READ, Resource.DEMOGRAPHICS)
    assert not allowed("", Op.READ, Resource.AGGREGATES)


def test_a_staff_account_whose_role_says_console_gets_nothing() -> None:
    # A role column tampered to the console row's key must not borrow its grants.
    from careloop.security.models import User
    from careloop.security.permissions import actor_allowed

    assert not actor_allowed(User(role=CONSOLE, is_active=True), Op.WRITE, Resource.KEYS)
    assert not is_staff_role(CONSOLE)


def test_docs_show_the_table_as_it_is_in_code() -> None:
    text = DOC.read_text()
    assert GENERATED.search(text), "docs/permissions.md lost its generated-table markers"
    expected = GENERATED.sub(lambda m: m.group(1) + markdown_table() + m.group(2), text)
    if os.environ.get("CARELOOP_WRITE_DOCS") == "1" and text != expected:
        DOC.write_text(expected)
        text = expected
    assert text == expected, (
        "docs/permissions.md differs from the permission table; regenerate it with "
        "CARELOOP_WRITE_DOCS=1 pytest tests/security/test_permissions.py"
    )
