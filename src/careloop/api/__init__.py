"""careloop's JSON API under /api/v1/, for staff tools and integrations.

Built with django-ninja: endpoints are typed functions, their request and response
bodies pydantic schemas, and the OpenAPI 3.1 document at /api/v1/openapi.json is generated
from those types, so it cannot drift from the code. Callers authenticate with a personal
API token (`Authorization: Bearer clp_...`, careloop.security.tokens) and nothing else:
no session cookie is ever read, so there is no CSRF to defend against. Every endpoint
declares its permission (`endpoint_permission`) and audits what it read or wrote; every
error is an RFC 9457 problem document (careloop.api.problems).
"""
