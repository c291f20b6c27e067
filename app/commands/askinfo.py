"""`/askinfo`: Zalo's "share your information" form to the conversation's Zalo user (reference
§3.2); what they share arrives as `user_submit_info`."""

from __future__ import annotations

import logging

from app.commands.base import Command, answer, say, zalo_user
from app.errors import OutcomeUnknown
from app.integrations.zalo.errors import ZaloPermanent
from app.integrations.zalo.schemas import anonymous_id
from app.relay import agent_view
from app.relay.context import Progress, RelayContext
from app.texts import for_customer, zalo_advice
from app.wording import in_language

log = logging.getLogger("commands.askinfo")


def ask_info(ctx: RelayContext, message: dict, command: Command, progress: Progress) -> None:
    user = zalo_user(ctx, message)
    if not user or anonymous_id(user):
        answer(ctx, message, say(ctx, "command.anonymous" if user else "command.no_zalo_user"))
        return
    progress()
    done = ctx.effects.once(
        f"zalo:askinfo:{message['id']}",
        lambda: attempt(ctx, user),
        also=lambda pipe, result: remember(ctx, pipe, result, message),
    )
    answer(ctx, message, report(ctx, done))


def attempt(ctx: RelayContext, user: str) -> dict:
    """Zalo's answer, kept as the effect's record (an unknown one is not sent again)."""
    title = for_customer(ctx.settings, "customer.askinfo_title")
    subtitle = for_customer(ctx.settings, "customer.askinfo_subtitle")
    try:
        image = str(ctx.zalo.get_oa().get("avatar") or "")  # the form's picture: the OA's own face
        return {"sent": str(ctx.zalo.request_user_info(user, title, subtitle, image))}
    except ZaloPermanent as exc:
        log.warning("commands.askinfo_refused", extra={"code": exc.code})
        return {"refused": exc.code, "detail": in_language(exc, ctx.settings.agent_language)}
    except OutcomeUnknown:
        return {"unknown": True}


def remember(ctx: RelayContext, pipe, result: dict, message: dict) -> None:
    """The form's id, as a reply's: its echo is ours, not "sent outside the bridge"."""
    if result.get("sent"):
        title = for_customer(ctx.settings, "customer.askinfo_title")
        agent_view.record_send(ctx, pipe, result["sent"], f"📝 {title}", str(message["conversation_id"]))


def report(ctx: RelayContext, done: dict) -> str:
    if done.get("sent"):
        return say(ctx, "command.askinfo_sent")
    if done.get("unknown"):
        return say(ctx, "command.outcome_unknown", what=say(ctx, "command.what_form"))
    return say(ctx, "command.askinfo_refused", advice=zalo_advice(ctx.settings, done["refused"]), detail=done["detail"])
