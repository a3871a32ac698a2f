"""What other surfaces ask of the sign-in: whether it is on and the word that signs in (the
member center's button sends that word through the dispatcher, so a sign-in there is the same
sign-in as in chat: one a day whichever way, the same points, streak and level-up)."""
from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from handlers.signin.config import SIGNIN, SigninConfig
from storage import signins

__all__ = ["SigninConfig", "settings", "streak"]


def settings(config: Config) -> SigninConfig | None:
    """``[signin]``, or None when the sign-in is off."""
    found = config[SIGNIN]
    return found if found.enabled else None


async def streak(session: AsyncSession, member_id: int, today: date) -> tuple[int, bool]:
    """The member's streak as of ``today`` and whether they signed in today: yesterday's streak
    still stands until today ends."""
    now = await signins.streak_on(session, member_id, today)
    if now:
        return now, True
    return await signins.streak_on(session, member_id, date.fromordinal(today.toordinal() - 1)), False
