"""Declaring a flow: states with prompts and deadlines, and ``transitions`` between them.

One ``transitions`` machine per flow definition, built once (DESIGN §5). A member's place in
the flow is a database row; to move it, the row is loaded into a light ``Conversation`` and the
event triggered on it (the machine never holds thousands of member models).

    flow = Flow(
        "survey",
        states=[State("ask_city", prompt="ask_city"), State("thanks", prompt="thanks", final=True)],
        transitions=[{"trigger": "answer", "source": "ask_city", "dest": "thanks",
                      "conditions": [not_empty], "before": [remember("city")]}],
        texts={"ask_city": "你在哪个城市？", "thanks": "谢谢，{city}的朋友！"},
    )
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from transitions.extensions.asyncio import AsyncMachine

from bot.texts import Texts
from flows.questions import answer, choice, store, valid

if TYPE_CHECKING:
    from bot.context import Context


@dataclass(frozen=True)
class State:
    """``prompt``: the key of the text sent on entering the state. ``deadlines``: (time after
    entering the state, event) pairs in order, each fired once while the member stays: e.g.
    remind after a day, close after two. ``deadline``/``on_deadline`` is the one-pair shorthand."""

    name: str
    prompt: str | None = None
    deadline: timedelta | None = None
    on_deadline: str | None = None
    final: bool = False
    deadlines: tuple[tuple[timedelta, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.deadline is None) != (self.on_deadline is None):
            raise ValueError(f"state {self.name} needs both a deadline and on_deadline")
        if self.deadline is not None:
            object.__setattr__(self, "deadlines", ((self.deadline, self.on_deadline), *self.deadlines))
        if list(self.deadlines) != sorted(self.deadlines, key=lambda d: d[0]):
            raise ValueError(f"state {self.name}: deadlines must be in time order")


class Conversation:
    """The model an event runs on: the row's state and collected answers, and the update.

    Conditions and callbacks get an ``EventData`` whose ``model`` is this object and whose
    ``kwargs`` carry the member's ``text``."""

    def __init__(self, flow: Flow, state: str, data: dict[str, Any], ctx: Context) -> None:
        self.flow = flow
        self.state = state
        self.data = data
        self.ctx = ctx


class OrderedMachine(AsyncMachine):
    """``AsyncMachine`` whose callbacks run one after another in declared order, as the
    synchronous ``Machine`` runs them. ``AsyncMachine`` gathers them as concurrent tasks: two
    async callbacks would interleave on the one database session of the member's update,
    which an ``AsyncSession`` does not allow, and each task costs a turn of the event loop
    (a confirmation took 100-160 µs, now ~60)."""

    @staticmethod
    async def await_all(callables: list[Callable[[], Any]]) -> list[Any]:
        return [await func() for func in callables]


Transition = Mapping[str, Any]
StepsAside = Callable[["Context"], bool]


class Flow:
    """A conversation with one member. ``recover_to``: the state a member goes to when the state
    they were in no longer exists (the definition changed while they were inside)."""

    def __init__(
        self, name: str, *, states: Sequence[State], transitions: Sequence[Transition], texts: Mapping[str, str],
        initial: str | None = None, recover_to: str | None = None, title: str | None = None,
        input_trigger: str = "answer", max_answer: int = 500, reminder: str | None = None,
        intro: str | None = None, steps_aside: StepsAside | None = None, left: str | None = None,
    ) -> None:
        """``reminder``: the key of a text sent before the question again when a deadline event
        leaves the member where they were. ``intro``: the key of a text sent with the first
        question when the flow starts (not with reminders). ``steps_aside``: a message it
        returns True for is not an answer: the member leaves the flow (told with the text
        ``left``, or the kernel's ``flow_left``) and the message is handled as if no flow were
        active (``flows.confirm``: another command)."""
        self.name = name
        self.title = title or name
        self.states = {s.name: s for s in states}
        self.initial = initial or states[0].name
        self.recover_to = recover_to or self.initial
        self.texts = dict(texts)
        self._render = Texts(self.texts)  # built once: prompts are rendered on every answer
        self.input_trigger = input_trigger
        self.max_answer = max_answer
        self.reminder = reminder
        self.intro = intro
        self.steps_aside = steps_aside
        self.left = left
        for state in states:
            if state.prompt is not None and state.prompt not in self.texts:
                raise ValueError(f"flow {name}: state {state.name} prompts with unknown text {state.prompt!r}")
        if left is not None and left not in self.texts:
            raise ValueError(f"flow {name}: left is an unknown text {left!r}")
        self.machine = OrderedMachine(
            model=None, states=list(self.states), transitions=[dict(t) for t in transitions], initial=self.initial,
            auto_transitions=False, send_event=True, queued=False,
        )

    def text(self, key: str, data: Mapping[str, Any]) -> str:
        return self._render(key, **data)

    def state_label(self, texts: Texts, state: str) -> str:
        """Where a member is, in operators' words: the text ``flow_state_<flow>_<state>`` (the
        feature's), else ``flow_state_<state>`` (the engine's: confirm, done, lapsed), else the
        kernel's 进行中 / 已结束."""
        for key in (f"flow_state_{self.name}_{state}", f"flow_state_{state}"):
            if key in texts:
                return texts(key)
        spec = self.states.get(state)
        return texts("flow_state_final" if spec is not None and spec.final else "flow_state_open")

    def prompt(self, state: str, data: Mapping[str, Any]) -> str | None:
        spec = self.states.get(state)
        return self.text(spec.prompt, data) if spec is not None and spec.prompt is not None else None

    async def fire(self, conversation: Conversation, trigger: str, **kwargs: Any) -> bool:
        """Trigger ``trigger``; False when no transition from the current state allows it.
        Nothing a member types can reach a state the definition does not connect."""
        event = self.machine.events.get(trigger)
        if event is None or conversation.state not in self.states:
            return False
        return bool(await event.trigger(conversation, **kwargs))


def remember(key: str, transform: Callable[[str], Any] = str.strip) -> Callable[[Any], None]:
    """A ``before`` callback storing the member's answer under ``key``."""
    return store(key, transform)


def one_of(*choices: str) -> Callable[[Any], bool]:
    """A condition: the answer is one of ``choices`` (or its 1-based number)."""
    return valid(partial(choice, choices=choices))


def not_empty(event: Any) -> bool:
    return bool(answer(event))


def describe(flows: Mapping[str, Flow], texts: Texts, name: str, state: str,
             active: bool = True) -> tuple[str, str]:
    """A member's flow row in operators' words: the flow's title and where they are in it (a
    flow no longer defined keeps its stored name). A flow the member left (退出, or another
    flow started) before its end reads 已退出, not 进行中."""
    flow = flows.get(name)
    if flow is None:
        return name, texts("flow_state_open" if active else "flow_state_left")
    spec = flow.states.get(state)
    if not active and (spec is None or not spec.final):
        return flow.title, texts("flow_state_left")
    return flow.title, flow.state_label(texts, state)
