"""`GET /api/v1/me`: who the token belongs to and what their role may do."""

# No `from __future__ import annotations`: django-ninja reads the endpoint's parameter
# types at import time, through the permission wrapper, and needs them as real objects.

from django.db import transaction
from django.http import HttpRequest
from ninja import Router

from careloop.api.auth import ANY_STAFF, api_user, endpoint_permission
from careloop.api.schemas import Me
from careloop.security.audit import audit_record
from careloop.security.models import Role
from careloop.security.permissions import TABLE

router = Router(tags=["me"])


@router.get("/me", response=Me, summary="The caller: username, name, role and permissions")
@endpoint_permission(ANY_STAFF)
@transaction.atomic
def me(request: HttpRequest) -> Me:
    user = api_user(request)
    grants = TABLE.get(Role(user.role), {})
    audit_record(action="api.read", request=request, resource_type="me", fields=["role"])
    return Me(
        username=user.username,
        full_name=user.get_full_name(),
        role=user.role,
        permissions={
            str(resource): sorted(str(op) for op in ops) for resource, ops in grants.items()
        },
    )
