"""The flow engine: runs members' flows inside their update's transaction (DESIGN §5).

Every change goes through a row with a version: the update's transaction reads it, triggers the
event on a ``Conversation``, and saves it only if nobody changed it meanwhile. Updates of one
member are already serialized by the dispatcher; the version check is what keeps two processes
honest too. Deadlines are data: the job runner (``bot.jobs``) turns a passed deadline into a
``flow_deadline`` update, handled here like any other. States entered and deadlines fired are
counted (``storage.tally``, for ``/metrics``) when the update's transaction commits.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.context import Context
from flows.engine import Conversation, Flow
from storage import audit, tally
from storage import flows as rows
from storage.models import MemberFlow

PREFETCHED = "active_flow"  # ctx.data key of the prefetched active flow row
EXIT_WORDS = frozenset({"退出", "取消"})
HELP_WORDS = frozenset({"帮助"})


class FlowEngine:
    def __init__(self, flows: Iterable[Flow]) -> None:
        self.flows = {f.name: f for f in flows}

    # -- what the dispatcher asks -------------------------------------------------------------

    async def prefetch(self, ctxs: list[Context]) -> None:
        """Load the active flows of a batch's one-to-one texts in one query (DESIGN §9: one
        statement per batch on the hot path, not one per message)."""
        wanted = [c for c in ctxs if c.update.is_private and c.update.text is not None and c.update.event is None]
        if wanted:
            found = await rows.active_of(wanted[0].session, [c.member.id for c in wanted])
            for ctx in wanted:
                ctx.data[PREFETCHED] = found.get(ctx.member.id)

    async def _active(self, ctx: Context) -> MemberFlow | None:
        # A row changed earlier in this batch (an operator's invite) is read again.
        if PREFETCHED in ctx.data and ctx.member.id not in rows.written_in(ctx.session):
            return ctx.data[PREFETCHED]
        return await rows.active(ctx.session, ctx.member.id)

    async def handle(self, ctx: Context) -> bool:
        """Offer a one-to-one text to the member's active flow; True when it took it."""
        if ctx.update.text is None:
            return False
        row = await self._active(ctx)
        if row is None:
            return False
        flow = self.flows.get(row.flow)
        if flow is None:  # a flow removed from the bot: let the member talk normally again
            await self._save(ctx, row, state=row.state, data=row.data, active=False, deadline_at=None, finished=True)
            return False
        text = ctx.update.text.strip()
        state, data = self._recovered(flow, row)
        if text in EXIT_WORDS:
            await self._save(ctx, row, state=state, data=data, active=False, deadline_at=None, finished=True)
            ctx.reply(ctx.texts("flow_exited", flow=flow.title))
            return True
        if text in HELP_WORDS:
            ctx.reply(ctx.texts("flow_where", flow=flow.title, prompt=flow.prompt(state, data) or ""))
            return True
        if await self._stepped_aside(ctx, flow, row):
            return False  # routed on as if no flow were active
        note = ""
        if len(text) > flow.max_answer:
            text, note = text[: flow.max_answer], ctx.texts("flow_answer_cut", limit=flow.max_answer)
        conversation = Conversation(flow, state, dict(data), ctx)
        moved = await flow.fire(conversation, flow.input_trigger, text=text)
        if not moved:
            # Not an answer this state takes: ask the same question again (nothing changed).
            ctx.reply(ctx.texts("flow_invalid", prompt=flow.prompt(state, data) or "") + note)
            return True
        await self._after(ctx, flow, row, conversation, note=note)
        return True

    async def on_deadline(self, ctx: Context) -> None:
        """A deadline passed (the job runner's update): fire the state's deadline event once."""
        assert ctx.update.flow is not None
        flow_name, version = ctx.update.flow
        row = await rows.load(ctx.session, ctx.member.id, flow_name)
        flow = self.flows.get(flow_name)
        if row is None or flow is None or row.version != version or row.finished_at is not None:
            return  # the member moved on since the job runner looked: nothing is due any more
        state, data = self._recovered(flow, row)
        spec = flow.states.get(state)
        fired = row.deadlines_fired
        conversation = Conversation(flow, state, dict(data), ctx)
        if spec is None or fired >= len(spec.deadlines) or not await flow.fire(conversation, spec.deadlines[fired][1]):
            # Nothing to fire (any more): do not come back for it.
            await self._save(ctx, row, state=state, data=data, active=row.active, entered_at=row.entered_at,
                             deadlines_fired=fired + 1,
                             deadline_at=self._deadline(flow, state, row.entered_at, fired + 1))
            return
        tally.add(ctx.session, tally.FLOW_TIMEOUTS, flow.name, state)
        await self._after(ctx, flow, row, conversation, note="", by_deadline=True)

    async def current_prompt(self, ctx: Context) -> str | None:
        """The question the sender's active flow waits on (to repeat after an unknown command)."""
        row = await self._active(ctx)
        flow = self.flows.get(row.flow) if row is not None else None
        if row is None or flow is None:
            return None
        state, data = self._recovered(flow, row)
        return flow.prompt(state, data)

    async def give_way(self, ctx: Context) -> None:
        """A command is about to run: an active flow that steps aside for it is left."""
        row = await self._active(ctx)
        flow = self.flows.get(row.flow) if row is not None else None
        if row is not None and flow is not None:
            await self._stepped_aside(ctx, flow, row)

    # -- what handlers and operators call ---------------------------------------------------------

    async def start(self, ctx: Context, flow_name: str, data: dict[str, Any] | None = None) -> None:
        """Start ``flow_name`` for the sender from its first state (again, if they were in it)."""
        await self.start_for(ctx, ctx.member.id, ctx.update.sender, flow_name, data)

    async def start_for(
        self, ctx: Context, member_id: int, external_id: str, flow_name: str, data: dict[str, Any] | None = None,
        *, channel: str | None = None,
    ) -> None:
        """Start ``flow_name`` for another member (an operator's invite), on their ``channel``."""
        flow = self.flows[flow_name]
        data = dict(data or {})
        await rows.restart(ctx.session, member_id, flow_name, state=flow.initial, data=data, active=True,
                           entered_at=ctx.now, deadlines_fired=0,
                           deadline_at=self._deadline(flow, flow.initial, ctx.now, 0), now=ctx.now)
        tally.add(ctx.session, tally.FLOW_TRANSITIONS, flow_name, flow.initial)
        parts = [flow.text(flow.intro, data) if flow.intro else None, flow.prompt(flow.initial, data)]
        if any(parts):
            ctx.send("\n".join(p for p in parts if p), to=external_id, channel=channel)

    def running(self, flow_name: str) -> bool:
        return flow_name in self.flows

    async def move(self, ctx: Context, member_id: int, flow_name: str, state: str, *, reason: str) -> None:
        """An operator puts a member in ``state`` of ``flow_name`` (``initial``: a reset). Audited."""
        flow = self.flows.get(flow_name)
        if flow is None or state not in flow.states:
            raise ValueError(f"flow {flow_name!r} has no state {state!r}")
        row = await rows.load(ctx.session, member_id, flow_name)
        data = dict(row.data) if row is not None and state != flow.initial else {}
        await rows.restart(ctx.session, member_id, flow_name, state=state, data=data,
                           active=not flow.states[state].final,
                           entered_at=ctx.now, deadlines_fired=0, deadline_at=self._deadline(flow, state, ctx.now, 0),
                           now=ctx.now, finished=flow.states[state].final)
        tally.add(ctx.session, tally.FLOW_TRANSITIONS, flow_name, state)
        await audit.record(
            ctx.session, actor=ctx.actor, action="flow.move", result="ok",
            now=ctx.now, args={"member_id": member_id, "flow": flow_name, "from": row.state if row else None,
                                "to": state, "reason": reason},
        )

    # -- inside --------------------------------------------------------------------------------

    async def _stepped_aside(self, ctx: Context, flow: Flow, row: MemberFlow) -> bool:
        """Leave ``flow`` if it steps aside for this message (the member told); True if it did."""
        if flow.steps_aside is None or not flow.steps_aside(ctx):
            return False
        state, data = self._recovered(flow, row)
        await self._save(ctx, row, state=state, data=data, active=False, deadline_at=None, finished=True)
        ctx.reply(flow.text(flow.left, data) if flow.left else ctx.texts("flow_left", flow=flow.title))
        return True

    def _recovered(self, flow: Flow, row: MemberFlow) -> tuple[str, dict[str, Any]]:
        """The row's state, or where the definition sends members of a state it no longer has."""
        if row.state in flow.states:
            return row.state, dict(row.data)
        return flow.recover_to, {**row.data, "_recovered_from": row.state}

    @staticmethod
    def _deadline(flow: Flow, state: str, entered_at: datetime, fired: int) -> datetime | None:
        """The next deadline of ``state``: counted from entering it, skipping those fired."""
        deadlines = flow.states[state].deadlines if state in flow.states else ()
        return entered_at + deadlines[fired][0] if fired < len(deadlines) else None

    async def _after(
        self, ctx: Context, flow: Flow, row: MemberFlow, conversation: Conversation, *, note: str,
        by_deadline: bool = False,
    ) -> None:
        state, data = conversation.state, conversation.data
        final = flow.states[state].final
        stayed = state == row.state
        if not stayed:
            entered_at, fired = ctx.now, 0  # deadlines run from entering a state
        else:
            entered_at, fired = row.entered_at, row.deadlines_fired + (1 if by_deadline else 0)  # each fires once
        if final:
            # Written with the batch's other finished flows (a rush of confirmations): one statement.
            rows.finish(ctx.session, row.member_id, row.flow, state=state, data=data, version=row.version,
                        entered_at=entered_at, deadlines_fired=fired, now=ctx.now)
            await ctx.defer(_flush)
        else:
            await self._save(ctx, row, state=state, data=data, active=row.active, entered_at=entered_at,
                             deadlines_fired=fired, deadline_at=self._deadline(flow, state, entered_at, fired))
        if not stayed:
            tally.add(ctx.session, tally.FLOW_TRANSITIONS, flow.name, state)
        prompt = flow.prompt(state, data)
        if stayed and by_deadline and flow.reminder is not None:
            prompt = flow.text(flow.reminder, data) + ("\n" + prompt if prompt else "")
        if prompt is not None:
            ctx.send(prompt + note, to=ctx.update.sender)

    @staticmethod
    async def _save(ctx: Context, row: MemberFlow, *, state: str, data: dict[str, Any], active: bool,
                    deadline_at: datetime | None, finished: bool = False, entered_at: datetime | None = None,
                    deadlines_fired: int | None = None) -> None:
        """Save ``row`` changed; the state's clock (entered_at, deadlines fired) stays unless given."""
        await rows.save(
            ctx.session, row.member_id, row.flow, state=state, data=data, version=row.version, active=active,
            entered_at=entered_at or row.entered_at,
            deadlines_fired=row.deadlines_fired if deadlines_fired is None else deadlines_fired,
            deadline_at=deadline_at, now=ctx.now, finished=finished, was_active=row.active,
        )


async def _flush(ctxs: list[Context]) -> None:
    """The batch stage that writes the flows its updates finished (``storage.flows.finish``)."""
    await rows.flush(ctxs[0].session)
