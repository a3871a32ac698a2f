"""Roles, weakest first: each role may do what the ones before it may."""
from __future__ import annotations

ROLES = ("member", "viewer", "operator", "admin")


def has_role(actual: str, needed: str) -> bool:
    return ROLES.index(actual) >= ROLES.index(needed)
