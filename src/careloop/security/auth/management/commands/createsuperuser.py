"""Django's `createsuperuser`, validating the password in non-interactive mode too.

Django checks the password validators only when it prompts; with `--no-input` and
DJANGO_SUPERUSER_PASSWORD it would accept "password123". careloop accepts no password
that the validators refuse, whichever way it arrives.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from careloop.security.models import User


class Command(createsuperuser.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not options["interactive"] and password is not None:
            username = options.get(User.USERNAME_FIELD) or os.environ.get(
                "DJANGO_SUPERUSER_USERNAME", ""
            )
            try:
                validate_password(password, User(username=username))
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from None
        super().handle(*args, **options)
