"""``GET /sandbox/roles``: who holds a role on the sandbox channel, so the sandbox page can show
the member being played as what they are (成员, 运营 ...) and offer one click to play an
operator (an admin of ``[operators] admins``, or one granted with ``/role grant``)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.appkeys import DB, DISPATCHER
from bot.http import json_response
from bot.roles import ROLES
from storage import roles


def roles_of(channel: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler listing ``channel``'s role holders, strongest first, with the roles' labels."""

    async def get_roles(request: web.Request) -> web.Response:
        texts = request.app[DISPATCHER].texts
        async with request.app[DB].read() as session:
            held = [r for r in await roles.all_roles(session) if r.channel == channel and r.role in ROLES]
        held.sort(key=lambda r: (-ROLES.index(r.role), r.external_id))
        return json_response({
            "roles": [{"id": r.external_id, "role": r.role, "label": texts(f"role_{r.role}")} for r in held],
            "labels": {role: texts(f"role_{role}") for role in ROLES},
        })

    return get_roles
