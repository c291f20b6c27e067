"""One partner webhook, classified once: what it is, which lane it joins, or why it is dropped.

Each provider's schema module turns a validated webhook into an `Event` (`to_event`). The web
process answers or queues from it, and the worker dispatches on its `kind`, so the routing rules
live in one place per provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What the webhook does with an event.
QUEUE = "queue"  # relayed: joins its lane
RECORDED = "recorded"  # known, deliberately not relayed; answered {"recorded": <name>}
IGNORED = "ignored"  # known, dropped for a reason (a private note, an echo of our own send)
UNKNOWN = "unknown"  # a name this bridge has never heard of: acknowledged, logged as a warning

# The kinds a worker handles (per provider, see HANDLERS in app/relay/inbound.py and outbound.py).
USER_MESSAGE = "user_message"  # a Zalo user wrote to the OA
OA_MESSAGE = "oa_message"  # the OA wrote to a Zalo user (not necessarily via us)
AGENT_MESSAGE = "agent_message"  # a FreshChat agent or bot replied
AGENT_COMMAND = "agent_command"  # an agent's reply that begins with "/": a command for the bridge (app/commands/)
CONVERSATION_STATE = "conversation_state"  # a FreshChat conversation was resolved, reopened, assigned
RECEIPT = "receipt"  # a Zalo user's phone received or showed messages the OA sent
REACTION = "reaction"  # a Zalo user reacted to a message
TEMPLATE_STATUS = "template_status"  # Zalo changed the status of one of the OA's templates (change_template_status)
FOLLOW = "follow"  # a Zalo user followed or unfollowed the OA (app/relay/follows.py)
SHARED_INFO = "shared_info"  # a Zalo user shared their information (app/relay/shared_info.py)
# Timers the bridge sets itself (app/relay/agent_view.py), in lanes of their own.
WINDOW_CLOSING = "window_closing"  # the free reply window of a user's message is about to close
RECEIPTS_NOTE = "receipts_note"  # tell the agents of a conversation what was received and read
SURVEY_QUESTION = "survey_question"  # ask the customer of a resolved conversation for a rating (app/relay/survey.py)
# The kinds whose delivery puts a message on the other side: what "relayed" counts.
# (A command puts one there only as "//text"; the others answer NOT_RELAYED.)
MESSAGES = frozenset({USER_MESSAGE, OA_MESSAGE, AGENT_MESSAGE, AGENT_COMMAND, REACTION})
# A handler's answer when it deliberately put nothing on the other side (our own send echoed
# back, a reply held because Zalo would bill it): done, but not a relayed message.
NOT_RELAYED = "not_relayed"


@dataclass(frozen=True)
class Event:
    provider: str  # "zalo" or "freshchat"
    name: str  # the partner's own name for it: Zalo event_name, FreshChat action
    verdict: str = QUEUE
    kind: str = ""  # set when the verdict is QUEUE
    lane: str = ""  # "in:<zalo user>" or "out:<freshchat conversation>"
    dedupe_id: str = ""
    reason: str = ""  # why it is not queued, as answered to the partner
    own: bool = False  # the bridge's own post or send, echoed back by the partner: nothing lost
    payload: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def queued(self) -> bool:
        return self.verdict == QUEUE


def queued(provider: str, name: str, kind: str, lane: str, dedupe_id: str, payload: dict) -> Event:
    return Event(provider, name, QUEUE, kind=kind, lane=lane, dedupe_id=dedupe_id, payload=payload)


def recorded(provider: str, name: str) -> Event:
    return Event(provider, name, RECORDED, reason=name)


def ignored(provider: str, name: str, reason: str, own: bool = False) -> Event:
    return Event(provider, name, IGNORED, reason=reason, own=own)


def unknown(provider: str, name: str) -> Event:
    return Event(provider, name, UNKNOWN, reason=f"unknown event {name}")
