"""Template helpers of the intake pages."""

from __future__ import annotations

from django import template

from careloop.intake.models import Questionnaire
from careloop.intake.selectors import questionnaire_title

register = template.Library()


@register.filter
def title_for_reader(questionnaire: Questionnaire) -> str:
    """The questionnaire's title in the page's language (portal pages)."""
    return questionnaire_title(questionnaire)
