"""Drive a siyu app through its sandbox endpoints, in-process, as a member would."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlmodel import col

from bot.app import create_app
from bot.appkeys import DB, DISPATCHER, OUTBOX
from bot.clock import Clock
from bot.config import Config
from bot.context import Context
from bot.dispatcher import Dispatcher
from bot.update import Update
from storage import outbox
from storage.engine import Database
from storage.models import OutboxMessage


def csrf_of(html: str) -> str:
    """The CSRF token in a console page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if found is None:
        raise AssertionError("the page has no CSRF field")
    return found.group(1)


class SandboxClient:
    """``say`` and ``event`` return the bot's replies; ``outbox`` what it delivered."""

    def __init__(self, client: TestClient) -> None:
        self.http = client
        self.app = client.app

    @property
    def dispatcher(self) -> Dispatcher:
        return self.app[DISPATCHER]

    @property
    def db(self) -> Database:
        return self.app[DB]

    async def sign_in(self, name: str, password: str) -> str:
        """Sign in to the console as a fresh browser does (no cookies, the sign-in form's CSRF
        token); the CSRF token of the session's forms."""
        self.http.session.cookie_jar.clear()
        page = await self.http.get("/console/login")
        resp = await self.http.post("/console/login", data={
            "name": name, "password": password, "csrf": csrf_of(await page.text()), "next": "/console"},
            allow_redirects=False)
        if resp.status != 302:
            raise AssertionError(f"console sign-in as {name} answered {resp.status}: {await resp.text()}")
        return csrf_of(await (await self.http.get("/console")).text())

    async def console_page(self, path: str, *, name: str, password: str) -> str:
        """A console page as ``name`` sees it, signed in afresh."""
        await self.sign_in(name, password)
        return await (await self.http.get(path)).text()

    async def open_member_center(self, member: str, path: str = "/m/") -> str:
        """Open the member center as the sandbox member ``member`` on a fresh browser (this
        machine signs in with ``?as=``); the page at ``path``."""
        self.http.session.cookie_jar.clear()
        resp = await self.http.get("/m/", params={"as": member})
        assert resp.status == 200, f"/m/?as={member} answered {resp.status}: {await resp.text()}"
        return await self.member_page(path)

    async def member_page(self, path: str) -> str:
        """A member-center page as the signed-in member sees it."""
        resp = await self.http.get(path)
        assert resp.status == 200, f"{path} answered {resp.status}: {await resp.text()}"
        return await resp.text()

    async def member_post(self, path: str, form: dict[str, str] | None = None, *, page: str = "/m/") -> str:
        """Submit a member-center form (with the CSRF token of ``page``) and return the page it
        leads to, which shows what the action answered."""
        csrf = csrf_of(await self.member_page(page))
        resp = await self.http.post(path, data={**(form or {}), "csrf": csrf})
        assert resp.status == 200, f"POST {path} answered {resp.status}: {await resp.text()}"
        return await resp.text()

    async def say(self, sender: str, text: str, *, chat: str | None = None, name: str | None = None,
                  id: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"from": sender, "chat": chat, "text": text}
        if name is not None:
            body["name"] = name
        if id is not None:
            body["id"] = id
        return await self._post("/sandbox/messages", body)

    async def event(self, type: str, user: str, *, chat: str | None = None, state: str | None = None,
                    name: str | None = None) -> list[dict[str, Any]]:
        body = {k: v for k, v in {"type": type, "user": user, "chat": chat, "state": state, "name": name}.items()
                if v is not None}
        return await self._post("/sandbox/events", body)

    async def deliver(self, timeout: float = 30.0) -> None:
        """Deliver everything due now (tests need not wait for the worker's next pass), and wait
        for what the background worker is sending at this moment (in real time: a group's rate
        limit, ``[outbox] group_rate_per_min``, may hold a burst to one group for seconds). Done only when nothing is
        sending and nothing is due in one snapshot: a row held back behind one the worker was
        sending is claimable once that one is settled."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            while await self.app[OUTBOX].deliver_once():
                pass
            async with self.db.read() as session:
                if not await outbox.unsettled(session, now=self.dispatcher.clock.now()):
                    return
            if asyncio.get_running_loop().time() > deadline:
                async with self.db.read() as session:
                    stuck = [(r.id, r.status, r.channel, r.chat, r.to, r.not_before, r.claimed_until, r.text[:20])
                             for r in (await session.execute(select(OutboxMessage).where(
                                 col(OutboxMessage.status).in_((outbox.SENDING, outbox.PENDING))))).scalars()]
                raise AssertionError(f"outbox rows still unsettled after {timeout:g}s "
                                     f"(now {self.dispatcher.clock.now()}): {stuck}")
            await asyncio.sleep(0.005)

    @asynccontextmanager
    async def as_operator(self, sender: str = "op1") -> AsyncIterator[Context]:
        """A context for ``sender`` in one transaction, to call operators' APIs directly; the
        messages it queued go to the outbox when the block ends."""
        now = self.dispatcher.clock.now()
        async with self.db.transaction() as session:
            update = Update(channel="sandbox", key=f"operator:{sender}:{now.isoformat()}", sender=sender, at=now)
            ctx = Context(update=update, session=session, now=now, texts=self.dispatcher.texts,
                          dispatcher=self.dispatcher)
            yield ctx
            await outbox.enqueue(session, ctx.outgoing, now=now)

    async def outbox(self, **query: Any) -> list[dict[str, Any]]:
        await self.deliver()
        resp = await self.http.get("/sandbox/outbox", params={k: str(v) for k, v in query.items() if v is not None})
        assert resp.status == 200, await resp.text()
        return (await resp.json())["messages"]

    async def _post(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        resp = await self.http.post(path, json=body)
        data = await resp.json()
        if resp.status != 200:
            raise AssertionError(f"{path} answered {resp.status}: {data}")
        return data["replies"]


@asynccontextmanager
async def sandbox_app(config: Config, *, clock: Clock | None = None) -> AsyncIterator[SandboxClient]:
    """Start the app (migrations included) on a local port and yield a client for it. The app
    is made of the features the config was built with (``bot.builtin.config_from_dict``)."""
    app = create_app(config, clock=clock)
    async with TestClient(TestServer(app)) as client:
        yield SandboxClient(client)
