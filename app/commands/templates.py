"""`/templates` (the OA's approved Zalo templates) and `/template <id>` + `name: value` lines
(send one to the conversation's Zalo user, by user id: a closed reply window's way to them)."""

from __future__ import annotations

import logging

from app.commands.base import Command, answer, catalogue, say, zalo_user
from app.errors import OutcomeUnknown
from app.integrations.zalo.client import sent_id
from app.integrations.zalo.errors import ZaloPermanent
from app.integrations.zalo.schemas import anonymous_id
from app.integrations.zalo.templates import Template, check
from app.relay import agent_view
from app.relay.context import Progress, RelayContext
from app.texts import template_advice, vn_time
from app.wording import in_language

log = logging.getLogger("commands.templates")
# What `check` finds, and the line of the note that names it.
PROBLEMS = (("missing", "command.missing"), ("unknown", "command.unknown_params"), ("too_long", "command.too_long"))


# -- /templates -------------------------------------------------------------------------------


def list_templates(ctx: RelayContext, message: dict, command: Command, progress: Progress) -> None:
    try:
        listing = catalogue(ctx).refresh(progress)
    except ZaloPermanent as exc:
        answer(ctx, message, refused(ctx, "command.templates_failed", exc))
        return
    if not listing.templates:
        answer(ctx, message, say(ctx, "command.no_templates"))
        return
    lines = "\n".join(template_line(ctx, t) for t in listing.templates)
    answer(ctx, message, say(ctx, "command.templates", time=vn_time(listing.refreshed_at_ms), lines=lines))


def template_line(ctx: RelayContext, template: Template) -> str:
    price = template.price or say(ctx, "command.no_price")
    shown = {"id": template.id, "name": template.name, "price": price}
    return say(ctx, "command.template_line", params=params(ctx, template), **shown)


def params(ctx: RelayContext, template: Template) -> str:
    """ "customer_name* (up to 30 characters), order_code (…)"; * marks a required one."""
    shown = []
    for param in template.params:
        limit = f" ({say(ctx, 'command.param_max', max=param.max_length)})" if param.max_length else ""
        shown.append(f"{param.name}{'*' if param.required else ''}{limit}")
    return ", ".join(shown) or say(ctx, "command.no_params")


def refused(ctx: RelayContext, key: str, exc: ZaloPermanent, **values) -> str:
    detail = in_language(exc, ctx.settings.agent_language)
    return say(ctx, key, advice=template_advice(ctx.settings, exc.code), detail=detail, **values)


# -- /template <id> ---------------------------------------------------------------------------


def send_template(ctx: RelayContext, message: dict, command: Command, progress: Progress) -> None:
    """Checked against the template, then sent at most once per FreshChat message (its effect
    record); whatever Zalo answered is the note."""
    template_id = command.args.split()[0] if command.args else ""
    if not template_id:
        answer(ctx, message, say(ctx, "command.template_usage"))
        return
    effect = f"zalo:template:{message['id']}"
    done = ctx.effects.recorded(effect)
    if done is None:
        refusal, template, user = checked(ctx, message, command, template_id, progress)
        if refusal or template is None:  # no template without a refusal saying why
            answer(ctx, message, refusal)
            return
        values, _ = values_of(command.lines)
        progress()
        done = ctx.effects.once(
            effect,
            lambda: attempt(ctx, user, template, values),
            also=lambda pipe, result: remember(ctx, pipe, result, message),
        )
    answer(ctx, message, report(ctx, done))


def checked(
    ctx: RelayContext, message: dict, command: Command, template_id: str, progress: Progress
) -> tuple[str, Template | None, str]:
    """(why nothing goes, as the note says it, or ""; the template; the Zalo user)."""
    user = zalo_user(ctx, message)
    if not user:
        return say(ctx, "command.no_zalo_user"), None, ""
    if anonymous_id(user):
        return say(ctx, "command.anonymous"), None, ""
    try:
        template = catalogue(ctx).find(template_id, progress)
    except ZaloPermanent as exc:
        return refused(ctx, "command.templates_failed", exc), None, ""
    if template is None:
        return say(ctx, "command.template_unknown", id=template_id), None, ""
    if not template.enabled:
        status = template.status or "?"
        return say(ctx, "command.template_not_enabled", id=template.id, name=template.name, status=status), None, ""
    return param_problems(ctx, template, command.lines), template, user


def values_of(lines: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """The `name: value` lines as a dict, and the lines that are not of that form."""
    values, bad = {}, []
    for line in lines:
        name, colon, value = line.partition(":")
        if colon and name.strip():
            values[name.strip()] = value.strip()
        else:
            bad.append(line)
    return values, bad


def param_problems(ctx: RelayContext, template: Template, lines: tuple[str, ...]) -> str:
    """The note naming what is wrong with the parameters, or "" when they are right."""
    values, bad = values_of(lines)
    found = check(template, values)
    problems = "".join(say(ctx, key, names=", ".join(found[kind])) for kind, key in PROBLEMS if found[kind])
    if bad:
        problems += say(ctx, "command.bad_lines", lines=" | ".join(bad))
    if not problems:
        return ""
    shown = {"id": template.id, "name": template.name, "params": params(ctx, template)}
    return say(ctx, "command.template_params", problems=problems, **shown)


def attempt(ctx: RelayContext, user: str, template: Template, values: dict[str, str]) -> dict:
    """Zalo's answer, kept as the effect's record: sent, refused, or unknown (no answer came:
    never sent again, a template is billed and the customer must not get it twice)."""
    shown = {"id": template.id, "name": template.name}
    try:
        sent = ctx.zalo.send_template(user, template.id, values)
    except ZaloPermanent as exc:
        log.warning("commands.template_refused", extra={"code": exc.code, "template": template.id})
        return {**shown, "refused": exc.code, "detail": in_language(exc, ctx.settings.agent_language), "user": user}
    except OutcomeUnknown as exc:
        log.warning("commands.template_outcome_unknown", extra={"template": template.id, "error": str(exc)})
        return {**shown, "unknown": True}
    return {**shown, "sent": str(sent), "quota": sent.quota, "user": user}


def remember(ctx: RelayContext, pipe, result: dict, message: dict) -> None:
    """A sent template's id, as the replies' are: its echo is ours, its receipt the agent's."""
    if result.get("sent"):
        sent = sent_id({"message_id": result["sent"], "quota": result.get("quota")})
        agent_view.record_send(ctx, pipe, sent, f"📋 {result['name']}", str(message["conversation_id"]))


def report(ctx: RelayContext, done: dict) -> str:
    shown = {"id": done["id"], "name": done["name"]}
    if done.get("sent"):
        return say(ctx, "command.template_sent", quota=quota_words(ctx, done.get("quota")), **shown)
    if done.get("unknown"):
        return say(ctx, "command.outcome_unknown", what=say(ctx, "command.what_template", id=done["id"]))
    advice = template_advice(ctx.settings, done["refused"])
    return say(ctx, "command.template_refused", advice=advice, detail=done["detail"], **shown)


def quota_words(ctx: RelayContext, quota) -> str:
    """ " Paid from: purchase_quota (12 left)." when Zalo said which quota paid, else ""."""
    if not isinstance(quota, dict) or not quota.get("quota_type"):
        return ""
    kind = str(quota["quota_type"])
    if quota.get("remain") not in (None, ""):
        kind = say(ctx, "command.quota_remain", kind=kind, remain=quota["remain"])
    return say(ctx, "command.quota", quota=kind)
