"""Django's `createsuperuser`, gated and audited like careloop's own commands, and
validating the password in non-interactive mode too.

Django checks the password validators only when it prompts; with `--no-input` and
DJANGO_SUPERUSER_PASSWORD it would accept "password123". careloop accepts no password
that the validators refuse, whichever way it arrives. Prefer `careloop user create`,
which also sets a role.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from careloop.core.cli import CareloopCommand
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import User
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand, createsuperuser.Command):
    permissions = ((Op.WRITE, Resource.USERS),)

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
        # Django creates the account deep inside its prompts, with no hook: the new
        # account is the superuser that was not there before.
        known = set(User.objects.filter(is_superuser=True).values_list("pk", flat=True))
        super().handle(*args, **options)
        for user in User.objects.filter(is_superuser=True).exclude(pk__in=known):
            audit_record(
                action="user.create",
                actor=console_actor(),
                resource_type="user",
                resource_id=str(user.pk),
            )
