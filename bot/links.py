"""Link placeholders: ``{name}`` or ``{name:page}`` in a message an operator writes (a playbook,
a broadcast, a welcome) whose value is a URL a feature serves, such as the member center's
``{member_center:mall}``. The feature plugs a ``LinkTarget`` into ``LINKS``; whoever fills a
message asks ``values`` for the links it uses.

Each link carries its campaign (``?c=<code>``: what sent it and to which group), so the member
center can count who came through which playbook and group. The code is random and stored
(``storage.campaigns``): a member cannot make one up, and no member id is in it.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.feature import Hook
from storage import campaigns

if TYPE_CHECKING:
    from bot.config import Config

# {name} or {name:page}: in a template, and as a key of the values (``member_center:mall``).
LINK = re.compile(r"\{([a-z_]+)(?::([a-z_]+))?\}")
PARAM = "c"


@dataclass(frozen=True)
class LinkTarget:
    """``name`` the placeholder; ``pages`` its page names and their paths below ``root`` ("" the
    root itself, "#x" a place on it); ``root(config)`` the URL it is served at (ending in "/"),
    None while it is switched off."""

    name: str
    pages: Mapping[str, str]
    root: Callable[[Config], str | None]


LINKS: Hook[LinkTarget] = Hook("link placeholders")


def targets(config: Config) -> dict[str, LinkTarget]:
    return {t.name: t for t in config.hooked(LINKS)}


def used(config: Config, text: str) -> list[tuple[str, str]]:
    """The link placeholders ``text`` uses, as (name, page) ("" for the root), in order, once each."""
    known = targets(config)
    found = [(m.group(1), m.group(2) or "") for m in LINK.finditer(text) if m.group(1) in known]
    return list(dict.fromkeys(found))


def unknown_pages(config: Config, text: str) -> list[tuple[str, str]]:
    """The ``{name:page}`` of ``text`` whose page does not exist, with the pages that do
    ("、"-joined): an operator's typo is refused when written, rather than sent as a broken link."""
    known = targets(config)
    return [(f"{{{name}:{page}}}", "、".join(p for p in known[name].pages if p))
            for name, page in used(config, text) if page not in known[name].pages]


def key(name: str, page: str) -> str:
    return f"{name}:{page}" if page else name


def with_query(url: str, query: str) -> str:
    """``url`` with ``query`` added (before its fragment)."""
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{query}{hash_}{fragment}"


def join(root: str, path: str) -> str:
    if not path or path.startswith("#"):
        return root + path
    return root.rstrip("/") + "/" + path


def available(config: Config, name: str, overrides: Mapping[str, str | None] | None = None) -> bool:
    """Whether ``{name}`` has a URL now (an override, or its feature switched on)."""
    target = targets(config).get(name)
    return bool((overrides or {}).get(name)) or (target is not None and target.root(config) is not None)


async def values(session: AsyncSession, config: Config, text: str, *, source: str, group_id: int | None,
                 now: datetime, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The URLs of the link placeholders ``text`` uses, sent by ``source`` (``sop:<playbook>``,
    ``broadcast:<id>``, ``welcome``) to the group ``group_id`` (None: one-to-one). An override
    (``[broadcasts] member_center_url``, the brand's own page) is used as written, without a
    campaign; an unknown page or a target switched off gives nothing (the braces stay)."""
    known, out = targets(config), {}
    code: str | None = None
    for name, page in used(config, text):
        target = known[name]
        if page not in target.pages:
            continue
        override = (overrides or {}).get(name)
        root = override or target.root(config)
        if root is None:
            continue
        url = join(root, target.pages[page])
        if not override:
            code = code or await campaigns.code_for(session, source, group_id, now=now)
            url = with_query(url, f"{PARAM}={code}")
        out[key(name, page)] = url
    return out


def for_texts(config: Config, filled: Mapping[str, str]) -> dict[str, object]:
    """Link values for a ``Texts`` template (``str.format_map``): there ``{member_center:mall}``
    is the field ``member_center`` with the format spec ``mall``, so each target's value is a
    ``Pages`` that formats to the page's URL by its spec (one without a URL stays as written)."""
    pages: dict[str, dict[str, str]] = {name: {} for name in targets(config)}
    for k, url in filled.items():
        name, _, page = k.partition(":")
        pages.setdefault(name, {})[page] = url
    return {name: Pages(name, urls) for name, urls in pages.items()}


class Pages:
    def __init__(self, name: str, urls: Mapping[str, str]) -> None:
        self.name, self.urls = name, urls

    def __format__(self, spec: str) -> str:
        return self.urls.get(spec) or "{" + key(self.name, spec) + "}"

    def __str__(self) -> str:
        return format(self, "")


def text_problems(template: str, link_targets: Mapping[str, LinkTarget]) -> list[str]:
    """What is wrong with the link placeholders of an operator's text override (a page that
    does not exist), for the config loader; the text's other placeholders are its own."""
    found = []
    for _, field, spec, _ in string.Formatter().parse(template):
        target = link_targets.get(field or "")
        if target is not None and (spec or "") not in target.pages:
            found.append(f"{{{field}:{spec}}} is not a page; the pages are "
                         + ", ".join(p for p in target.pages if p))
    return found


def sample(link_targets: Mapping[str, LinkTarget]) -> dict[str, object]:
    """Values to try an override with: every page of every target formats."""
    return {name: Pages(name, {page: "https://example.com/" for page in t.pages}) for name, t in link_targets.items()}
