"""The staff home page's headline counts, on a small practice built by hand."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

import pytest
from django.test import Client

from careloop.core import clock
from careloop.core.practice import practice_today
from careloop.core.selectors import practice_headline
from careloop.leads.models import Lead
from careloop.patients.models import LifecycleStage, Patient
from careloop.referrals.models import Referral
from careloop.scheduling.models import Provider
from careloop.security.models import Role
from tests.patients.builders import (
    add_appointment,
    make_location,
    make_patient,
    make_provider,
    make_user,
)
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
# Wednesday 11 June 2025, 3 pm in Chicago (CDT, UTC-5): the week runs Mon 9 to Sun 15.
NOW = datetime.datetime(2025, 6, 11, 20, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2025, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def frozen_now() -> Iterator[datetime.datetime]:
    with clock.frozen(NOW):
        yield NOW


def _patients(provider: Provider) -> list[Patient]:
    stages = [
        LifecycleStage.CHRONIC,
        LifecycleStage.CHRONIC,
        LifecycleStage.PREVENTIVE,
        LifecycleStage.ACQUISITION,
        LifecycleStage.DORMANT,
        LifecycleStage.DECEASED,
    ]
    return [
        make_patient(f"Given{n}", f"Family{n}", datetime.date(1970, 1, 1 + n), lifecycle_stage=s)
        for n, s in enumerate(stages)
    ]


@pytest.fixture
def population(frozen_now: object) -> None:
    provider = make_provider(make_location())
    patients = _patients(provider)
    p = patients[0]
    for start, status in [
        (at(6, 11, 14), "fulfilled"),  # 9 am today: today, week, attended
        (at(6, 12, 4, 30), "booked"),  # 11:30 pm today in Chicago, the 12th in UTC: today
        (at(6, 11, 16), "cancelled"),  # cancelled: counts nowhere
        (at(6, 11, 4, 30), "noshow"),  # 11:30 pm yesterday in Chicago: week, no-show
        (at(6, 15, 20), "booked"),  # Sunday: week
        (at(6, 16, 6), "booked"),  # 1 am next Monday: not this week
        (at(6, 9, 4), "fulfilled"),  # 11 pm last Sunday: not this week; attended
        (at(4, 1, 15), "noshow"),  # within 90 days: no-show
        (at(3, 1, 15), "noshow"),  # before the 90 days: counts nowhere
        (at(5, 1, 15), "checked_in"),  # within 90 days: attended
    ]:
        add_appointment(p, provider, start, status)
    for direction, status in [
        ("outbound", "sent"),
        ("outbound", "scheduled"),
        ("outbound", "completed"),
        ("outbound", "closed"),
        ("outbound", "cancelled"),
        ("inbound", "sent"),
    ]:
        Referral.objects.create(
            patient=p,
            direction=direction,
            status=status,
            specialty="Cardiology",
            counterpart="Heart Partners",
            created_at=at(5, 20, 12),
        )
    for created, status in [
        (at(6, 1, 5, 30), "new"),  # 00:30 on 1 June in Chicago: this month
        (at(6, 1, 4, 30), "new"),  # 23:30 on 31 May in Chicago: last month
        (at(6, 10, 12), "new"),
        (at(6, 5, 12), "converted"),
    ]:
        lead = Lead(
            given_name="Lee",
            family_name="Lead",
            source="web_form",
            status=status,
            created_at=created,
        )
        lead.save()


def stat_values(html: str) -> dict[str, str]:
    return dict(
        re.findall(
            r'data-stat="([a-z-]+)">\s*<h2[^>]*>[^<]*</h2>\s*<p class="stat-value">([^<]*)</p>',
            html,
        )
    )


def stage_counts(html: str) -> dict[str, int]:
    rows = re.findall(r'data-stage="([a-z_]+)">.*?<td class="num">(\d+)</td>', html, re.S)
    return {stage: int(n) for stage, n in rows}


@pytest.fixture
def coordinator(client: Client) -> Client:
    force_verified_login(client, make_user(Role.CARE_COORDINATOR))
    return client


def test_home_shows_the_practice_headline_counts(coordinator: Client, population: None) -> None:
    response = coordinator.get("/", secure=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert stat_values(html) == {
        "active-patients": "4",
        "appointments-today": "2",
        "appointments-week": "4",
        "no-show-rate": "40%",
        "open-referrals": "3",
        "new-leads": "3",
    }
    assert "2 of 5 visits" in html
    assert "Wednesday, June 11, 2025" in html
    assert "of 6 on record" in html


def test_home_breaks_patients_down_by_lifecycle_stage(
    coordinator: Client, population: None
) -> None:
    counts = stage_counts(coordinator.get("/", secure=True).content.decode())
    assert counts["chronic"] == 2
    assert counts["preventive"] == 1
    assert counts["acquisition"] == 1
    assert counts["dormant"] == 1
    assert counts["deceased"] == 1
    assert counts["transferred"] == 0
    assert set(counts) == set(LifecycleStage.values)


def test_home_on_an_empty_practice_shows_zeros_and_no_rate(
    coordinator: Client, frozen_now: object
) -> None:
    values = stat_values(coordinator.get("/", secure=True).content.decode())
    assert values["active-patients"] == "0"
    assert values["no-show-rate"] == "—"


def test_practice_day_follows_the_practice_time_zone() -> None:
    # 02:00 UTC on the 12th is still the evening of the 11th in Chicago.
    with clock.frozen(at(6, 12, 2)):
        assert practice_today() == datetime.date(2025, 6, 11)


def test_headline_takes_four_queries_whatever_the_population(
    population: None, django_assert_num_queries: object
) -> None:
    actor = make_user(Role.ADMIN)
    with django_assert_num_queries(4):  # type: ignore[operator]
        headline = practice_headline(actor=actor, today=practice_today())
    assert headline.no_show_rate == pytest.approx(0.4)


def test_auditor_sees_home_without_the_practice_figures(client: Client, population: None) -> None:
    force_verified_login(client, make_user(Role.AUDITOR))
    response = client.get("/", secure=True)
    assert response.status_code == 200
    assert stat_values(response.content.decode()) == {}
