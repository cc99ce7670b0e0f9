"""Staff pages of the insurance cards patients upload in the portal, mounted at
/insurance-cards/ (careloop.urls)."""

from __future__ import annotations

from django.urls import path

from careloop.portal import staff_insurance

app_name = "insurance_cards"
urlpatterns = [
    path("<uuid:patient_id>/", staff_insurance.cards, name="list"),
    path("<uuid:patient_id>/files/<uuid:card_id>/", staff_insurance.card_file, name="file"),
]
