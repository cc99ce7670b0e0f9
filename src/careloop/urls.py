from __future__ import annotations

import re

from django.conf import settings
from django.urls import include, path, re_path

from careloop.core import health
from careloop.core import views as core_views
from careloop.scheduling import urls_waitlist

urlpatterns = [
    path("", core_views.home, name="home"),
    path("accounts/", include("careloop.security.auth.urls")),
    path("patients/", include("careloop.patients.urls")),
    path("patients/", include("careloop.consent.urls")),
    path("patients/", include("careloop.patients.urls_registration")),
    path("caregaps/", include("careloop.caregaps.urls")),
    path("emergency-access/", include("careloop.security.break_glass_urls")),
    path("audit/", include("careloop.security.urls_audit")),
    path("integration/", include("careloop.ehr.urls")),
    path("api/", include("careloop.api.urls")),
    path("fhir/r4/", include("careloop.fhirapi.urls")),
    path("webhooks/", include("careloop.outreach.urls")),
    path("m/", include("careloop.outreach.urls_links")),
    path("outreach/", include("careloop.outreach.urls_staff")),
    path("portal/forms/", include("careloop.intake.urls_portal")),
    path("portal/", include("careloop.portal.urls")),
    path("intake/", include("careloop.intake.urls_staff")),
    path("schedule/", include("careloop.scheduling.urls_waitlist")),
    path("w/", include(urls_waitlist.claim_urls)),
    path("inbox/", include("careloop.portal.urls_staff")),
    path("insurance-cards/", include("careloop.portal.urls_insurance_staff")),
    path("schedule/", include("careloop.scheduling.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    re_path(
        rf"^{re.escape(settings.STATIC_URL.lstrip('/'))}(?P<path>.+)$",
        core_views.static_asset,
        name="static",
    ),
]
