"""The portal's pages: the staff app's headers, local assets only, labelled inputs."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PUBLIC_PAGES = ["/portal/signin/", "/portal/signin/link/", "/portal/register/"]


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_portal_pages_carry_the_csp_and_load_nothing_from_elsewhere(path: str) -> None:
    response = Client().get(path, secure=True)
    page = response.content.decode()

    assert response.status_code == 200
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    css = re.search(r'href="(/static/portal/portal\.css[^"]*)"', page)
    assert css is not None
    assert Client().get(css.group(1).replace("&amp;", "&"), secure=True).status_code == 200


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_every_input_has_a_label(path: str) -> None:
    page = Client().get(path, secure=True).content.decode()
    ids = re.findall(r'<input(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page)
    inputs = re.findall(r'<input(?![^>]*type="hidden")[^>]*>', page)

    assert ids and len(ids) == len(inputs)
    for input_id in ids:
        assert f'<label for="{input_id}">' in page
