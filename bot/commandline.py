"""Parsing an operator's command like a CLI: quoted arguments, ``key=value`` options, member and
group references by id or name. A handler that finds its arguments wrong raises ``UsageError``
and the dispatcher answers with the problem and the command's usage (its docstring).

    @router.command("points", role="operator")
    async def points_command(ctx: Context) -> None:
        \"\"\"发放或扣除积分
        /points grant <用户> <数量> <原因>
        /points deduct <用户> <数量> <原因>\"\"\"
        args = parse(ctx.args)
        action = args.choice(0, "动作", ("grant", "deduct"))
        member = await find_member(ctx, args.word(1, "用户"))
        amount = args.number(2, "数量", low=1, high=1_000_000)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select
from sqlmodel import col

from bot.context import Context
from bot.numbers import is_digits, parse_id, parse_int
from bot.router import UsageError
from storage.community import Group, Member

__all__ = ["Args", "UsageError", "find_group", "find_member", "parse", "split"]
MAX_WORD = 500
T = TypeVar("T")


@dataclass
class Args:
    words: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    def word(self, index: int, name: str) -> str:
        if index >= len(self.words):
            raise UsageError(f"缺少{name}")
        return self.words[index]

    def rest(self, index: int, name: str) -> str:
        """Every word from ``index`` on, joined by spaces (a reason, a text)."""
        if index >= len(self.words):
            raise UsageError(f"缺少{name}")
        return " ".join(self.words[index:])

    def number(self, index: int, name: str, *, low: int, high: int) -> int:
        value = self.word(index, name)
        number = parse_int(value, low, high, signed=True)
        if number is None:
            raise UsageError(f"{name}要是 {low} 到 {high} 之间的整数，不是「{value[:32]}」")
        return number

    def choice(self, index: int, name: str, choices: Sequence[str], labels: Mapping[str, str] | None = None) -> str:
        """One of ``choices``, typed as it is or as its label (运营 for operator): operators
        type the words the bot shows them."""
        value = self.word(index, name)
        if value in choices:
            return value
        named = labels or {}
        for choice in choices:
            if named.get(choice) == value:
                return choice
        shown = [named.get(c, c) for c in choices]
        raise UsageError(f"{name}要是 {' / '.join(shown)} 之一，不是「{value[:32]}」")

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def no_more_than(self, count: int) -> None:
        if len(self.words) > count:
            raise UsageError(f"多了参数「{self.words[count][:32]}」（有空格的参数请用引号括起来）")


SPACE = " \t\r\n"  # what separates words, as for a shell


def split(text: str) -> list[str]:
    """Words as a shell splits them, but for people typing in chat: "..." and “...” group words,
    and so does '...' opened at the start of a word, closed by a ' before a space or the end; an
    apostrophe inside a word is a letter ("it's fine" is two words). A backslash escapes the
    next character outside quotes, and " or \\ inside "...". UsageError if a quote is left open."""
    text = text.replace("“", '"').replace("”", '"')
    words: list[str] = []
    word: list[str] = []
    in_word, quote, i = False, "", 0
    while i < len(text):
        c, after = text[i], text[i + 1:i + 2]
        if quote == '"' and c == "\\" and after in ('"', "\\"):
            word.append(after)
            i += 1
        elif c == quote and (quote == '"' or after in ("", *SPACE)):
            quote = ""
        elif quote:
            word.append(c)
        elif c in SPACE:
            if in_word:
                words.append("".join(word))
            word, in_word = [], False
        elif c == '"' or (c == "'" and not in_word):
            quote, in_word = c, True
        elif c == "\\" and after:
            word.append(after)
            in_word = True
            i += 1
        else:
            word.append(c)
            in_word = True
        i += 1
    if quote:
        raise UsageError("引号不成对")
    if in_word:
        words.append("".join(word))
    return words


def parse(text: str, *, options: Sequence[str] = ()) -> Args:
    """Split like a shell (``split``: quotes group words); ``key=value`` words whose key is in
    ``options`` become options."""
    args = Args()
    for word in split(text):
        if len(word) > MAX_WORD:
            raise UsageError(f"参数太长（最多 {MAX_WORD} 个字）")
        key, eq, value = word.partition("=")
        if eq and key in options:
            args.options[key] = value
        else:
            args.words.append(word)
    return args


async def _lookup(ctx: Context, model: type[Member] | type[Group], ref: str) -> list[Any]:
    """Rows of ``model`` whose id on their channel, ``channel:id`` (as /member and /role list
    write it) or name is ``ref``; the exact ids first."""
    channel, colon, bare = ref.partition(":")
    match = [col(model.external_id) == ref, col(model.name) == ref]
    if colon and bare:
        match.append(and_(col(model.channel) == channel, col(model.external_id) == bare))
    found: list[Any] = list((await ctx.session.execute(
        select(model).where(or_(*match)).order_by(col(model.id)).limit(5))).scalars())
    return [row for row in found if ref in (row.external_id, f"{row.channel}:{row.external_id}")] or found


def _only(found: list[T], ref: str, what: str, listed: Callable[[T], str], hint: str = "") -> T:
    if not found:
        raise UsageError(f"没有找到{what}「{ref[:32]}」")
    if len(found) > 1:
        raise UsageError(f"「{ref[:32]}」对应多个{what}：{'、'.join(listed(f) for f in found)}{hint}")
    return found[0]


async def find_member(ctx: Context, ref: str) -> Member:
    """A member by the id their channel knows them by, by ``#<number>`` (siyu's own id) or by
    name; UsageError if none or several match."""
    if ref.startswith("#") and is_digits(ref[1:]):
        member_id = parse_id(ref[1:])  # beyond MAX_ID no member has it: none found, not a crash
        member = await ctx.session.get(Member, member_id) if member_id is not None else None
        found = [member] if member is not None else []
    else:
        found = await _lookup(ctx, Member, ref)
    return _only(found, ref, "用户", lambda m: f"#{m.id} {m.channel}:{m.external_id}", "，请用 # 加编号指定")


async def find_group(ctx: Context, ref: str) -> Group:
    """A group by its id on its channel or by name; UsageError if none or several match."""
    return _only(await _lookup(ctx, Group, ref), ref, "群", lambda g: g.external_id)
