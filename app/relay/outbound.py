"""FreshChat -> Zalo: agents' replies and conversation state (docs/interface.md §5).

A reply goes to a Zalo user through the CS API, to an anonymous visitor (the OA's web chat
widget) through Zalo's anonymous-conversation API; its first text part may quote the message
the agent answered and carry the agent's signature (`Dress`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.bridge.lanes import Item
from app.bridge.outcome import Relayed
from app.errors import PartnerError, PermanentError, RetryableError
from app.integrations import events
from app.integrations.freshchat.schemas import STATE_KEYS, conversation_id
from app.integrations.zalo.errors import ZaloAttachmentExpired, ZaloPermanent
from app.integrations.zalo.schemas import ANONYMOUS, anonymous_id
from app.media.fetch import BlockedAddress, MediaFetchError, MediaTooLarge, clean_filename, download
from app.media.links import media_url
from app.operations.status import remember_error
from app.relay import agent_view, follows, windows
from app.relay.context import Progress, RelayContext
from app.relay.media_rules import gif_size, zalo_upload_kind
from app.relay.reconcile import echo_patience, find_zalo_send, reconciler, zalo_fingerprint
from app.texts import for_agent, for_customer, kind_for_agent, resolve_text, zalo_advice
from app.wording import in_language

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("relay.outbound")
TEXT_LIMIT = 2000
PREVIEW = 300
SNIPPET = 100
STATUS = {"conversation_resolution": "resolved", "conversation_reopen": "open", "conversation_assignment": "assigned"}
# Zalo refusing an attachment itself (invalid, too large, quota, package, type): a link still works.
CONTENT_REFUSALS = {-201, -210, -211, -224, -233}
NOT_A_FOLLOWER = -213  # the note names the unfollow the bridge saw (app/relay/follows.py)
INVALID_RECIPIENT = -201  # Zalo refusing a reply's recipient (the message it answers): the user id still works
# An asset host saying "slow down" or "try later" is not a verdict on the file.
TRANSIENT_STATUSES = {408, 425, 429}
HTTP_MEANINGS = {401, 403, 404, 410}  # statuses the note to the agent explains in words (agent.http_<status>)
SIGNATURE_FIELDS = re.compile(r"\{(text|agent)\}")


@dataclass(frozen=True)
class Dress:
    """How an agent's text part reaches Zalo: quoting the Zalo message the agent answered, and
    signed with the connection's template when the agent's first name is known."""

    quote: str = ""  # a Zalo msg_id, for quote_message_id
    template: str = ""  # the connection's agent_signature
    agent: str = ""

    def signed(self, text: str) -> str:
        """The template filled in one pass (an agent's text with "{agent}" in it stays as
        written); a template without {text} is read as a line after the text."""
        if not (self.template and self.agent):
            return text
        template = self.template if "{text}" in self.template else "{text}\n" + self.template
        return SIGNATURE_FIELDS.sub(lambda field: text if field[1] == "text" else self.agent, template)


PLAIN = Dress()


class AttachmentUnusable(Exception):
    """The attachment can never be downloaded as given; `reason` (a key of app/texts.py, with
    `values`) says why, for the agent."""

    def __init__(self, reason: str, **values):
        super().__init__(reason)
        self.reason = reason
        self.values = values


def relay_agent_message(ctx: RelayContext, item: Item, progress: Progress) -> Relayed | str:
    return deliver_agent_message(ctx, item.payload["data"]["message"], progress)


def deliver_agent_message(ctx: RelayContext, message: dict, progress: Progress) -> Relayed | str:
    """Each part is one Zalo message, in order; each is sent at most once. A part that can
    never go is reported to the agent and skipped; a refusal about the recipient stops here.
    The Zalo ids the reply went out as, for the subscribers (the user's reply window is
    answered, a billed reply gets a note: app/relay/windows.py); NOT_RELAYED when nothing could
    go to the user at all."""
    conversation = message["conversation_id"]
    zalo_user = zalo_user_for(ctx, conversation, message.get("user_id"))
    if not zalo_user:
        log.info("relay.not_a_zalo_conversation", extra={"conversation": conversation})
        return events.NOT_RELAYED
    if windows.held(ctx, message, zalo_user, text_preview(message)):
        return events.NOT_RELAYED
    parts = outgoing_parts(message)
    dress = dress_for(ctx, message, parts)
    first_text = next((i for i, part in enumerate(parts) if "text" in part), None)
    sent = []
    for index, part in enumerate(parts):
        progress()
        try:
            dressed = dress if index == first_text else PLAIN
            sent.append(deliver_part(ctx, zalo_user, message["id"], index, part, conversation, dressed))
        except AttachmentUnusable as exc:
            log.warning(
                "relay.attachment_unusable", extra={"message_id": message["id"], "part": index, "why": exc.reason}
            )
            reason = for_agent(ctx.settings, exc.reason, **exc.values)
            what = attachment_label(ctx.settings, part)
            post_note(ctx, message, index, for_agent(ctx.settings, "agent.not_sent", what=what, reason=reason))
        except ZaloPermanent as exc:
            report_failure(ctx, message, index, exc, zalo_user)
            break
    if not sent:
        return events.NOT_RELAYED  # every part refused or reported to the agent
    return Relayed(zalo_user=zalo_user, reply=message, sent=tuple(sent))


def dress_for(ctx: RelayContext, message: dict, parts: list[dict]) -> Dress:
    """The quote (when the agent answers a message the bridge relayed) and the signature
    (when the connection signs and the agent has a name) of a message's first text part."""
    if not any("text" in part for part in parts):
        return PLAIN
    answered = str((message.get("in_reply_to") or {}).get("message_id") or "")
    template = ctx.settings.agent_signature
    agent = agent_first_name(ctx, str(message.get("actor_id") or "")) if template else ""
    return Dress(quote=ctx.messages.zalo_id(answered) if answered else "", template=template, agent=agent)


def agent_first_name(ctx: RelayContext, agent_id: str) -> str:
    """The agent's first name from FreshChat, cached; "" for an actor FreshChat does not know
    as an agent (a bot) or when it does not answer: a reply goes unsigned rather than late."""
    if not agent_id:
        return ""
    cached = ctx.mapping.agent_name(agent_id)
    if cached is not None:
        return cached
    try:
        name = str(ctx.freshchat.get_agent(agent_id).get("first_name") or "").strip()
    except PermanentError:
        name = ""
    except PartnerError as exc:
        log.warning("relay.agent_name_unavailable", extra={"agent": agent_id, "error": str(exc)})
        return ""
    ctx.mapping.remember_agent_name(agent_id, name)
    return name


def deliver_part(
    ctx: RelayContext, zalo_user: str, msg_id: str, index: int, part: dict, conversation: str = "", dress: Dress = PLAIN
) -> str:
    """Send once; the sent-record keeps the Zalo id (to spot echoes) and what the customer
    read, the receipt what became of it. Returns the Zalo message id."""
    shown = {"text": ""}

    def send() -> str:
        zalo_message_id, shown["text"] = send_part(ctx, zalo_user, msg_id, index, part, dress)
        return zalo_message_id

    def remember(pipe, sent: str) -> None:
        agent_view.record_send(ctx, pipe, sent, shown["text"][:SNIPPET], conversation)
        ctx.messages.link(sent, msg_id, pipe)  # a user quoting this reply is shown quoting it

    return ctx.effects.once(f"zalo:out:{msg_id}:{index}", send, also=remember, reconcile=zalo_reconciler(ctx))


def zalo_reconciler(ctx: RelayContext):
    return reconciler(ctx, "zalo", lambda flight: find_zalo_send(ctx, flight))


def zalo_user_for(ctx: RelayContext, conversation: str, fc_user: str | None) -> str:
    """From our conversation mapping, else from the FreshChat user's reference_id, when it
    names this connection's OA (a user of another OA on the same account is not ours: Zalo
    user ids differ per OA)."""
    known = ctx.mapping.conversation_user(conversation)
    if known or not fc_user:
        return known or ""
    reference = ctx.freshchat.get_user(fc_user).get("reference_id") or ""
    zalo_user = _zalo_user_in(reference, ctx.settings.zalo_oa_id)
    if zalo_user:
        ctx.mapping.link_conversation(zalo_user, conversation)
    return zalo_user


def _zalo_user_in(reference: str, oa_id: str) -> str:
    """The user of `zalo:<oa>:<user>` when <oa> is ours; `zalo:<user>` (written while no OA id
    was configured) is ours too; an anonymous visitor's `...:anon:<id>` the same way; "" for
    anything else."""
    parts = reference.split(":")
    if parts[0] != "zalo":
        return ""
    ids = parts[1:]
    if len(ids) >= 2 and ids[-2] + ":" == ANONYMOUS:
        ids = ids[:-2] + [ANONYMOUS + ids[-1]]
    if len(ids) not in (1, 2):
        return ""
    return "" if len(ids) == 2 and oa_id and ids[0] != oa_id else ids[-1]


def outgoing_parts(message: dict) -> list[dict]:
    """The message's parts, with its quick replies as numbered options after the last text
    (Zalo CS messages have no buttons that answer with a text)."""
    parts = [dict(part) for part in normalize_parts(message)]
    options = quick_reply_labels(message)
    if not options:
        return parts
    listed = "\n".join(f"{n}. {label}" for n, label in enumerate(options, 1))
    last_text = next((p for p in reversed(parts) if "text" in p), None)
    if last_text is None:
        return parts + [{"text": {"content": listed}}]
    content = (last_text["text"] or {}).get("content", "")
    last_text["text"] = {**(last_text["text"] or {}), "content": f"{content}\n\n{listed}" if content else listed}
    return parts


def normalize_parts(message: dict) -> list[dict]:
    """Current `message_parts`, or the 2018 `msg_parts` shape mapped onto it."""
    if message.get("message_parts"):
        return message["message_parts"]
    legacy = []
    for part in message.get("msg_parts") or []:
        kind, props = part.get("part_type", "text"), part.get("properties") or {}
        legacy.append({"text": {"content": props.get("text", "")}} if kind == "text" else {kind: props})
    return legacy


def quick_reply_labels(message: dict) -> list[str]:
    """`reply_parts[].collection.sub_parts[].quick_reply_button.label`, in order."""
    labels = []
    for reply in message.get("reply_parts") or []:
        for sub in ((reply or {}).get("collection") or {}).get("sub_parts") or []:
            label = str(((sub or {}).get("quick_reply_button") or {}).get("label") or "").strip()
            if label:
                labels.append(label)
    return labels


def send_part(
    ctx: RelayContext, zalo_user: str, msg_id: str, index: int, part: dict, dress: Dress = PLAIN
) -> tuple[str, str]:
    """Send one part: Zalo's message id and what the customer got, in words. Nothing may
    touch Redis after the Zalo call (see Effects.once)."""
    if "text" in part:
        return send_text(ctx, zalo_user, msg_id, index, (part["text"] or {}).get("content", ""), dress)
    if "image" in part or "file" in part or "video" in part:
        return send_media(ctx, zalo_user, msg_id, index, part)
    return send_words(ctx, zalo_user, describe_part(part))


def send_to(ctx: RelayContext, zalo_user: str, message: dict) -> str:
    """Zalo's message id. Recorded as in flight first, so an answer that never comes is looked
    for before the message goes again."""
    # Its echo may arrive before its outcome is known (app/relay/inbound.py): `sending_to` says
    # which send it may be.
    echo = {ctx.keys.sending_to(zalo_user): echo_patience(ctx.settings)}
    recipient = partial(ctx.mapping.zalo_user_in, zalo_user_id=zalo_user)  # read with the record
    known = ctx.effects.take_off(
        marks=echo, turn=ctx.zalo.limiter, read=recipient, to=zalo_user, what=zalo_fingerprint(message)
    )
    if known is None:  # a send nobody reconciles: no record, no round trip to ride in
        known = ctx.mapping.zalo_user(zalo_user)
    if zalo_user.startswith(ANONYMOUS):  # only a web-chat visitor's id is in that namespace
        return send_to_anonymous(ctx, zalo_user, message, known)
    return send_to_user(ctx, zalo_user, message, known)


def send_to_anonymous(ctx: RelayContext, zalo_user: str, message: dict, known: dict) -> str:
    """An anonymous visitor (the OA's web chat widget) is answered in the Zalo conversation
    their last message named (app/relay/inbound.py keeps it in `known`, the user's record)."""
    anonymous = anonymous_id(zalo_user)
    conversation = known.get("zalo_conversation_id")
    if not conversation:
        raise PermanentError(f"no Zalo conversation is known for anonymous visitor {anonymous}")
    return ctx.zalo.send_anonymous(anonymous, conversation, message)


def send_to_user(ctx: RelayContext, zalo_user: str, message: dict, known: dict) -> str:
    """Inside the user's free window as a reply to their last message (`windows.reply_target`
    of `known`, the user's record), the form Zalo counts as a reply rather than a proactive
    message; if Zalo refuses that recipient, once more to the user id, and later replies go to
    the user id at once."""
    target = windows.reply_target(known)
    if target:
        try:
            return ctx.zalo.send(zalo_user, message, reply_to=target)
        except ZaloPermanent as exc:
            if exc.code != INVALID_RECIPIENT:
                raise
            log.warning("zalo.reply_recipient_refused", extra={"code": exc.code})
            ctx.mapping.set_zalo_user(zalo_user, reply_refused=target)  # refused: nothing was sent
    return ctx.zalo.send(zalo_user, message)


def send_words(ctx: RelayContext, zalo_user: str, text: str, quote: str = "") -> tuple[str, str]:
    """A text message; one quoting a message Zalo will not quote goes once more without it."""
    if quote:
        try:
            return send_to(ctx, zalo_user, {"text": text, "quote_message_id": quote}), text
        except ZaloPermanent as exc:
            if exc.code not in CONTENT_REFUSALS:
                raise
            log.info("relay.quote_refused_sent_without", extra={"code": exc.code, "quoted": quote})
    return send_to(ctx, zalo_user, {"text": text}), text


def send_text(
    ctx: RelayContext, zalo_user: str, msg_id: str, index: int, text: str, dress: Dress = PLAIN
) -> tuple[str, str]:
    """Up to 2000 characters (signed) as text; longer as a .txt file of the agent's own words in
    the media store plus a signed text with its link."""
    if len(dress.signed(text)) <= TEXT_LIMIT:
        return send_words(ctx, zalo_user, dress.signed(text), dress.quote)
    key = ctx.keys.media(f"fc/{msg_id}/{index}", person=zalo_user)
    ctx.media.put(
        key, text.encode("utf-8"), content_type="text/plain; charset=utf-8", filename=f"message-{msg_id[:8]}.txt"
    )
    preview = text[:PREVIEW].rstrip()
    words = for_customer(
        ctx.settings, "customer.long_text", preview=preview, length=len(text), url=media_url(ctx.settings, key)
    )
    return send_words(ctx, zalo_user, dress.signed(words), dress.quote)


def send_media(ctx: RelayContext, zalo_user: str, msg_id: str, index: int, part: dict) -> tuple[str, str]:
    kind = attachment_kind(part)
    info = part[kind] or {}
    got = fetch_attachment(ctx, info)
    if got is None:
        name = info.get("name") or for_customer(ctx.settings, f"kind.{kind}")
        return send_words(
            ctx, zalo_user, for_customer(ctx.settings, "customer.file_link", name=name, url=info.get("url", ""))
        )
    upload_kind = zalo_upload_kind(got.content_type, len(got.data)) if kind != "video" else None
    if upload_kind is None:
        return send_link(ctx, zalo_user, ctx.keys.media(f"fc/{msg_id}/{index}", person=zalo_user), got)
    return send_attachment(ctx, zalo_user, msg_id, index, upload_kind, got)


def attachment_kind(part: dict) -> str:
    return next(k for k in ("image", "file", "video") if k in part)


def fetch_attachment(ctx: RelayContext, info: dict):
    """The attachment's bytes; None when it is too large to copy (the agent's link goes instead).
    AttachmentUnusable when no retry can fetch it; RetryableError when a later one may."""
    url = (info.get("url") or "").strip()
    if not url:
        raise AttachmentUnusable("agent.reason_no_url")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise AttachmentUnusable("agent.reason_not_web")
    try:
        return download(
            ctx.session,
            url,
            max_bytes=ctx.settings.media_max_bytes,
            allow_private=ctx.settings.media_fetch_allow_private,
            timeout=ctx.settings.http_timeout_seconds,
            filename_hint=info.get("name"),
        )
    except MediaTooLarge as exc:
        log.warning("relay.attachment_not_copied", extra={"error": str(exc)})
        return None
    except BlockedAddress as exc:
        raise AttachmentUnusable("agent.reason_blocked") from exc
    except MediaFetchError as exc:
        if exc.status and 400 <= exc.status < 500 and exc.status not in TRANSIENT_STATUSES:
            meaning = for_agent(ctx.settings, f"agent.http_{exc.status}") if exc.status in HTTP_MEANINGS else ""
            raise AttachmentUnusable("agent.reason_http", status=exc.status, meaning=meaning) from exc
        raise RetryableError(f"FreshChat attachment download failed: {exc}") from exc


def send_link(ctx: RelayContext, zalo_user: str, key: str, got) -> tuple[str, str]:
    ctx.media.put(key, got.data, content_type=got.content_type, filename=got.filename)
    line = "customer.image_link" if got.content_type.startswith("image/") else "customer.file_link"
    return send_words(
        ctx, zalo_user, for_customer(ctx.settings, line, name=got.filename, url=media_url(ctx.settings, key))
    )


def send_attachment(ctx: RelayContext, zalo_user: str, msg_id: str, index: int, kind: str, got) -> tuple[str, str]:
    """Upload once (Zalo's upload quota is monthly), send; re-upload if the id expired. When
    Zalo refuses the attachment itself, the customer gets the file as a link instead."""
    upload_key = f"zalo:upload:{msg_id}:{index}"
    try:
        attachment = ctx.effects.once(
            upload_key, lambda: ctx.zalo.upload(kind, got.data, got.filename, got.content_type)
        )
        sent = send_to(ctx, zalo_user, attachment_message(kind, attachment, got.data))
    except ZaloAttachmentExpired:
        ctx.effects.forget(upload_key)
        raise
    except ZaloPermanent as exc:
        if exc.code not in CONTENT_REFUSALS:
            raise
        log.warning("relay.attachment_refused_sent_as_link", extra={"code": exc.code, "message_id": msg_id})
        return send_link(ctx, zalo_user, ctx.keys.media(f"fc/{msg_id}/{index}", person=zalo_user), got)
    return sent, f"{'📎' if kind == 'file' else '🖼'} {got.filename}"


def attachment_message(kind: str, attachment: str, data: bytes) -> dict:
    if kind == "file":
        return {"attachment": {"type": "file", "payload": {"token": attachment}}}
    element: dict[str, str | int] = {"media_type": kind, "attachment_id": attachment}
    if kind == "gif":
        element["width"], element["height"] = gif_size(data)
    return {"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [element]}}}


def attachment_label(settings: Settings, part: dict) -> str:
    """ "file hoa-don.pdf": the kind and the name the agent knows it by (or its link's)."""
    kind = attachment_kind(part)
    info = part[kind] or {}
    name = clean_filename(info.get("name") or urlsplit(info.get("url") or "").path.rsplit("/", 1)[-1])
    word = kind_for_agent(settings, kind)
    return f"{word} {name}" if name else word


def describe_part(part: dict) -> str:
    """Buttons and other rich parts have no Zalo CS equivalent: send their words and links."""
    kind, body = next(iter(part.items()))
    if isinstance(body, dict):
        words = [str(body.get(k)) for k in ("label", "content", "url") if body.get(k)]
        if words:
            return " - ".join(words)
    return f"[{kind}]"


def report_failure(ctx: RelayContext, message: dict, index: int, exc: ZaloPermanent, zalo_user: str = "") -> None:
    """Zalo refused for a reason about the recipient or the window: tell the agent what to do
    (not a follower: the unfollow the bridge saw, if it saw one)."""
    preview = text_preview(message)
    advice, detail = zalo_advice(ctx.settings, exc.code), in_language(exc, ctx.settings.agent_language)
    text = for_agent(ctx.settings, "agent.refused", advice=advice, detail=detail)
    if exc.code == NOT_A_FOLLOWER:
        text += follows.unfollow_mark(ctx, zalo_user)
    if preview:
        text += for_agent(ctx.settings, "agent.refused_message", preview=preview)
    log.warning("relay.zalo_refused", extra={"code": exc.code, "message_id": message["id"]})
    remember_error(ctx.redis, ctx.keys, str(exc), item=message["id"])
    post_note(ctx, message, index, text)


def text_preview(message: dict) -> str:
    """The start of the message's first text, to name it in a note."""
    return next((p["text"].get("content", "")[:80] for p in normalize_parts(message) if "text" in p), "")


def post_note(ctx: RelayContext, message: dict, index: int, text: str) -> None:
    """A private note in the conversation, from the replying agent; once per message part.
    A note FreshChat refuses for good is only logged: the rest of the message still goes."""
    note = {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "private",
        "actor_type": message.get("actor_type") or "agent",
        "actor_id": message.get("actor_id"),
    }
    try:
        ctx.effects.once(
            f"fc:note:{message['id']}:{index}",
            lambda: ctx.freshchat.post_message(message["conversation_id"], note).get("id", ""),
        )
    except PermanentError as exc:
        log.error("relay.note_refused", extra={"message_id": message["id"], "error": str(exc)})


def update_state(ctx: RelayContext, item: Item, progress: Progress) -> None:
    event = item.payload
    conversation = conversation_id(event)
    inner = event["data"].get(STATE_KEYS[event["action"]]) or {}
    ctx.mapping.set_conversation(
        conversation, status=STATUS[event["action"]], agent_id=str(inner.get("to_agent_id") or "")
    )
    if event["action"] == "conversation_resolution" and ctx.settings.resolve_notification:
        notify_resolved(ctx, item, conversation, (inner.get("user") or {}).get("id"))


def notify_resolved(ctx: RelayContext, item: Item, conversation: str, fc_user: str | None) -> None:
    zalo_user = zalo_user_for(ctx, conversation, fc_user)
    if not zalo_user:
        return
    try:
        ctx.effects.once(
            f"zalo:resolve:{item.id}",
            lambda: send_to(ctx, zalo_user, {"text": resolve_text(ctx.settings)}),
            reconcile=zalo_reconciler(ctx),
        )
    except ZaloPermanent as exc:
        log.warning("relay.resolve_notification_refused", extra={"code": exc.code})


# The worker's one routing table for FreshChat events (workers/drain.py), by event kind.
HANDLERS = {events.AGENT_MESSAGE: relay_agent_message, events.CONVERSATION_STATE: update_state}
