"""Every `careloop` command goes through the permission table, as the console operator.

Each command declares the (operation, resource) pairs it performs; `CareloopCommand`
checks them against the console row before the command runs, whether it was started
from the command line or by `call_command` (as `careloop run` starts the demo). The
commands that change accounts, keys, configuration or the audit log record it as the
console actor: the system actor "console", labelled with the OS account.
"""

from __future__ import annotations

import getpass
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError

from careloop.core.cli import DENIED_EXIT, CareloopCommand
from careloop.security.models import AuditEvent, User
from careloop.security.permissions import CONSOLE, Op, Resource, allowed

# Commands careloop's apps must have: a sanity floor, so that an empty discovery (a
# renamed app prefix) cannot make the declaration test pass vacuously.
KNOWN_COMMANDS = {
    "keys", "user", "token", "audit", "vendor", "consent", "demo", "run", "serve", "worker",
    "createsuperuser",
}  # fmt: skip


def _careloop_commands() -> dict[str, BaseCommand]:
    """Every management command that one of careloop's own apps provides."""
    return {
        name: load_command_class(app, name)
        for name, app in get_commands().items()
        if app == "careloop" or app.startswith("careloop.")
    }


def _declaration_problem(command: BaseCommand) -> str | None:
    """Why `command` may not ship (no gate, no declaration, a pair the console lacks)."""
    if not isinstance(command, CareloopCommand):
        return "does not subclass careloop.core.cli.CareloopCommand"
    if not command.permissions:
        return "declares no permissions"
    refused = [(op, res) for op, res in command.permissions if not allowed(CONSOLE, op, res)]
    if refused:
        return f"declares {refused}, which the console row does not allow"
    return None


class Undeclared(CareloopCommand):
    """A command that forgot its declaration."""

    ran = False

    def handle(self, *args: Any, **options: Any) -> None:
        type(self).ran = True


class Peek(CareloopCommand):
    """A command that would read clinical facts, which the console may not."""

    permissions = ((Op.READ, Resource.CLINICAL),)
    ran = False

    def handle(self, *args: Any, **options: Any) -> None:
        type(self).ran = True


def _console_events(action: str) -> list[tuple[str, str, str]]:
    return [
        (e.actor_kind, e.actor_id, e.actor_label) for e in AuditEvent.objects.filter(action=action)
    ]


CONSOLE_ACTOR = ("system", "console", getpass.getuser())


# --- declarations ----------------------------------------------------------------------


def test_every_careloop_command_declares_what_it_does_and_the_console_row_allows_it() -> None:
    commands = _careloop_commands()
    assert set(commands) >= KNOWN_COMMANDS
    problems = {name: _declaration_problem(cmd) for name, cmd in commands.items()}
    assert {name: why for name, why in problems.items() if why} == {}


def test_the_declaration_check_fails_a_command_that_declares_nothing_or_too_much() -> None:
    assert _declaration_problem(Undeclared()) == "declares no permissions"
    assert "console row does not allow" in str(_declaration_problem(Peek()))
    assert "does not subclass" in str(_declaration_problem(BaseCommand()))


@pytest.mark.django_db
def test_a_command_without_a_declaration_does_not_run() -> None:
    with pytest.raises(CommandError, match="declares no permissions") as refused:
        call_command(Undeclared())
    assert refused.value.returncode == DENIED_EXIT
    assert not Undeclared.ran


# --- refusal ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_refused_command_through_call_command_raises_and_audits_the_denial() -> None:
    with pytest.raises(CommandError, match="console operator may not read clinical"):
        call_command(Peek())
    assert not Peek.ran
    denied = AuditEvent.objects.get(action="access.denied")
    assert (denied.actor_kind, denied.actor_id, denied.actor_label) == CONSOLE_ACTOR
    assert (denied.resource_type, denied.fields, denied.outcome) == (
        "clinical",
        ["read"],
        "denied",
    )


@pytest.mark.django_db(transaction=True)
def test_a_refused_command_on_the_command_line_prints_one_line_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        Peek().run_from_argv(["careloop", "peek"])
    assert exited.value.code == DENIED_EXIT
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"careloop {Peek().command_name}: the console operator may not read clinical; "
        "see docs/permissions.md"
    ]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not Peek.ran


# --- the console actor in the audit log ------------------------------------------------


def _create_user(monkeypatch: pytest.MonkeyPatch, name: str = "dana") -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("river stone lantern 42\n"))
    call_command(
        "user", "create", name, "--role", "front_desk", "--password-stdin", stdout=io.StringIO()
    )


@pytest.mark.django_db
def test_account_changes_at_the_console_are_audited_as_the_console_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _create_user(monkeypatch)
    for args in (["role", "dana", "clinician"], ["disable", "dana"], ["enable", "dana"]):
        call_command("user", *args, stdout=io.StringIO())
    call_command("user", "unlock", "dana", stdout=io.StringIO())
    call_command("user", "reset-mfa", "dana", stdout=io.StringIO())
    for action in (
        "user.create",
        "user.role_change",
        "user.disable",
        "user.enable",
        "user.unlock",
        "user.mfa_reset",
    ):
        assert _console_events(action) == [CONSOLE_ACTOR], action


@pytest.mark.django_db
def test_token_create_and_revoke_are_audited_as_the_console_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _create_user(monkeypatch)
    call_command("token", "create", "--user", "dana", stdout=io.StringIO(), stderr=io.StringIO())
    token = User.objects.get(username="dana").api_tokens.get()
    call_command("token", "revoke", str(token.id), stdout=io.StringIO())
    assert _console_events("token.create") == [CONSOLE_ACTOR]
    assert _console_events("token.revoke") == [CONSOLE_ACTOR]


@pytest.mark.django_db
def test_configuration_changes_at_the_console_are_audited_as_the_console_actor(
    tmp_path: Path,
) -> None:
    call_command("vendor", "add", "Acme SMS", "--kind", "sms", stdout=io.StringIO())
    body = tmp_path / "npp.txt"
    body.write_text("Our notice of privacy practices.", encoding="utf-8")
    call_command(
        "consent",
        "publish",
        "--kind",
        "npp_ack",
        "--version",
        "2026-11",
        "--title",
        "Notice",
        "--file",
        str(body),
        stdout=io.StringIO(),
    )
    assert _console_events("vendor.change") == [CONSOLE_ACTOR]
    assert _console_events("consent.document_publish") == [CONSOLE_ACTOR]


@pytest.mark.django_db(transaction=True)
def test_key_rotation_and_audit_verify_are_audited_as_the_console_actor() -> None:
    call_command("keys", "rotate", "--settle-seconds", "0", stdout=io.StringIO())
    call_command("audit", "verify", stdout=io.StringIO())
    rotated = AuditEvent.objects.get(action="keys.rotate")
    assert (rotated.actor_kind, rotated.actor_id, rotated.actor_label) == CONSOLE_ACTOR
    assert rotated.outcome == "success" and rotated.resource_id.isdigit()
    assert _console_events("audit.verify") == [CONSOLE_ACTOR]


@pytest.mark.django_db(transaction=True)
def test_the_demo_fill_is_audited_as_the_console_actor() -> None:
    call_command("demo", patients=2, as_of="2026-11-01", stdout=io.StringIO())
    fill = AuditEvent.objects.get(action="demo.fill")
    assert (fill.actor_kind, fill.actor_id, fill.actor_label) == CONSOLE_ACTOR
    assert "patients_patient" in fill.fields


def test_a_command_run_from_the_shell_is_audited_as_its_os_user(
    scratch_env: dict[str, str],
) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "careloop", "vendor", "add", "Acme SMS", "--kind", "sms"],
        env=scratch_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    show = (
        "from careloop.security.models import AuditEvent as E; "
        "e = E.objects.get(action='vendor.change'); "
        "print(e.actor_kind, e.actor_id, e.actor_label, e.source_ip, sep='|')"
    )
    shown = subprocess.run(
        [sys.executable, "-m", "careloop", "shell", "--no-imports", "-c", show],
        env=scratch_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert shown.stdout.strip() == f"system|console|{getpass.getuser()}|None"
