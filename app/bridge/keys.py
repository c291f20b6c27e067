"""Every Redis key the bridge uses, named once.

Two kinds of keys:
- the scheduler's, shared by every connection: the due set, the doorbell, one list and one
  lease per lane, the worker heartbeat. A lane's id already says whose conversation it is;
- a connection's own (mappings, dedupe, effects, tokens, limiters, breakers, dead letters),
  built by `Keys(connection)`. The `default` connection keeps the `zfb:` layout that single-OA
  bridges have always written, so an upgrade reads its data as it is; any other connection
  lives below `zfb:c:<id>:`.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from fnmatch import translate

ROOT = "zfb:"
DEFAULT = "default"

# -- the scheduler (docs/delivery.md, "Lanes") ------------------------------------------------
DUE = ROOT + "due"  # zset lane -> epoch ms when it may be claimed next
WAKE = ROOT + "wake"  # doorbell: lanes that just got work (a hint; DUE is the truth)
HEARTBEAT = ROOT + "worker:heartbeat"
WEB_STARTED = ROOT + "web:started"  # epoch s a web process last started: it was away before, Zalo may have given up
# Since when (epoch s) webhooks are refused for want of REDIS_WAIT_REPLICAS replicas: set by the
# first 503, deleted by the next success, so each web process logs a shortage once (expires).
REPLICAS_SHORT = ROOT + "redis:replicas:short"
# Zalo checks a domain, not a connection: which connection uploaded each verification file.
VERIFIER_OWNERS = ROOT + "verifier:owners"  # hash file code -> connection id
CONNECTIONS = ROOT + "connections"  # hash id -> JSON (secrets sealed): stored connections (app/connections/store.py)
# Written with it in one transaction: each connection's change stamp, and the store's version (the
# last stamp given), which every process's registry polls to re-read only what changed.
CONNECTIONS_STAMPS = CONNECTIONS + ":stamps"  # hash id -> random stamp, one per stored connection
CONNECTIONS_VERSION = CONNECTIONS + ":version"  # string: a random stamp, new at every write


def lane(lane_id: str) -> str:
    """The lane's items, oldest first."""
    return f"{ROOT}lane:{lane_id}"


def lease(lane_id: str) -> str:
    """The token of the worker draining the lane (with a TTL)."""
    return f"{ROOT}lease:{lane_id}"


def window_lane(zalo_user_id: str) -> str:
    """The timer lane of a user's free reply window: its one item is due shortly before the
    window of the user's last message closes."""
    return f"win:{zalo_user_id}"


def receipts_lane(conversation_id: str) -> str:
    """The timer lane of a conversation's receipts note (debounced)."""
    return f"rcpt:{conversation_id}"


def survey_lane(conversation_id: str) -> str:
    """The timer lane of a resolved conversation's rating question (app/relay/survey.py)."""
    return f"survey:{conversation_id}"


TIMER_LANES = (window_lane(""), receipts_lane(""), survey_lane(""))  # their prefixes


def is_timer_lane(lane_id: str) -> bool:
    """A lane whose item waits for a time (window_lane, receipts_lane, survey_lane), not for a worker."""
    return lane_id.rpartition("/")[2].startswith(TIMER_LANES)


def lane_for(connection: str, lane_id: str) -> str:
    """The lane id of one of a connection's conversations: the default connection's lanes keep
    the ids single-OA bridges wrote (`in:<user>`), another's are `<connection>/in:<user>`."""
    return lane_id if connection == DEFAULT else f"{connection}/{lane_id}"


def lane_connection(lane_id: str) -> str:
    """Whose lane it is: the inverse of `lane_for`."""
    head, slash, _ = lane_id.partition("/")
    return head if slash and ":" not in head else DEFAULT


# -- what connections share (docs/interface.md §7.2) -----------------------------------------
def account_id(freshchat_account: str) -> str:
    """A short stable name for a FreshChat account (its normalised API URL)."""
    return hashlib.sha256(freshchat_account.encode()).hexdigest()[:16]


def conversation_owner(freshchat_account: str) -> str:
    """Hash conversation id -> connection id, one per FreshChat account: several connections
    may share an account (one webhook URL), and its webhook goes to the conversation's owner.
    Written whenever a connection creates or links a conversation (app/bridge/mapping.py)."""
    return f"{ROOT}fcowner:{account_id(freshchat_account)}"


def person(app_id: str, freshchat_account: str, user_id_by_app: str) -> str:
    """One person across the OAs of one Zalo app (option merge_users_by_app): their FreshChat
    user id on that account, or `?<claim>` (with a TTL) while one connection creates it.
    One key per person who wrote through a merging connection; written by app/relay/people.py."""
    return f"{ROOT}person:{app_id}:{account_id(freshchat_account)}:{user_id_by_app}"


def zalo_rate_name(app_id: str) -> str:
    """Zalo's limit counts per app, so every OA of an app shares one limiter and -32 pause."""
    return f"zalo@{app_id}"


def freshchat_rate_name(freshchat_account: str) -> str:
    """FreshChat's limit counts per account: connections sharing one share its limiter."""
    return f"freshchat@{account_id(freshchat_account)}"


# -- the admin console and the bearer routes (app/web/console/, app/web/wrong_tokens.py) ----------------
CONSOLE_PREFIX = f"{ROOT}console:"  # sessions and throttles: never backed up (app/operations/backup.py)


def signin_failures(client: str) -> str:
    """Wrong tokens (sign-in or bearer) from one client address, counted while they keep
    coming (expires an hour after the last)."""
    return f"{CONSOLE_PREFIX}signin:failed:{client}"


def signin_wait(client: str) -> str:
    """Present (with a TTL) while that client must wait before trying again."""
    return f"{CONSOLE_PREFIX}signin:wait:{client}"


def console_session(session_id: str) -> str:
    """Present while a console session is signed in: sign-out deletes it, its TTL is the
    session's lifetime."""
    return f"{CONSOLE_PREFIX}session:{session_id}"


def person_folder(zalo_user_id: str) -> str:
    """A person's media folder: named by a digest, so no link shows whose copy it is, and any
    id (an anonymous one holds ":") makes a valid object name."""
    return "u/" + hashlib.sha256(zalo_user_id.encode()).hexdigest()[:32]


class Keys:
    """The keys of one connection."""

    def __init__(self, connection: str = DEFAULT):
        self.connection = connection
        self.prefix = ROOT if connection == DEFAULT else f"{ROOT}c:{connection}:"

    def media(self, path: str, person: str = "") -> str:
        """A media-store object name (not a Redis key): another connection's copies live under
        its own folder, so two OAs' message ids can never meet; the default's keep their names.
        With `person` (a Zalo user id), under that person's folder, so forgetting them finds
        every copy (app/operations/forget.py); copies made before that have no such folder."""
        path = f"{person_folder(person)}/{path}" if person else path
        return path if self.connection == DEFAULT else f"c/{self.connection}/{path}"

    # -- webhooks and effects
    def seen(self, source: str, event_id: str) -> str:
        """Dedupe key of an accepted webhook event."""
        return f"{self.prefix}seen:{source}:{event_id}"

    def done(self, effect: str) -> str:
        """The recorded result of a partner call made once, or, until it is recorded, the send's
        in-flight record: what, to whom, when (app/bridge/effects.py)."""
        return f"{self.prefix}done:{effect}"

    def flight(self, effect: str) -> str:
        """A partner send's in-flight record as versions up to fc5f0b4 kept it, apart from its
        result (now in `done`): still read and cleared, no longer written (app/bridge/effects.py)."""
        return f"{self.prefix}flight:{effect}"

    def sending_to(self, zalo_user_id: str) -> str:
        """The effect key of the bridge's latest send to a Zalo user: its echo may come before
        an unknown outcome is settled (app/relay/inbound.py)."""
        return f"{self.prefix}sending:{zalo_user_id}"

    @property
    def reconcile(self) -> str:
        """Hash: how unknown outcomes were settled (found, resent, unreadable), for status."""
        return f"{self.prefix}reconcile"

    # -- who is who (app/bridge/mapping.py)
    def zalo_user(self, zalo_user_id: str) -> str:
        return f"{self.prefix}zu:{zalo_user_id}"

    def last_seen(self, zalo_user_id: str) -> str:
        """When FreshChat's last_seen was refreshed, as versions up to fc5f0b4 kept it: now the
        user hash's `seen_at` (app/bridge/mapping.py `seen_due`). Not written; forgetting a
        person still removes one left behind (an hour's TTL)."""
        return f"{self.prefix}lastseen:{zalo_user_id}"

    def unfollowed(self, zalo_user_id: str) -> str:
        """When (epoch ms) the user last unfollowed the OA, while they have not followed it
        again (app/relay/follows.py); one per user, deleted by their next follow."""
        return f"{self.prefix}unfollowed:{zalo_user_id}"

    def conversation(self, conversation_id: str) -> str:
        return f"{self.prefix}fcc:{conversation_id}"

    def sent(self, zalo_message_id: str) -> str:
        """A message the bridge sent to Zalo (how its echo is recognised)."""
        return f"{self.prefix}sent:{zalo_message_id}"

    def replies(self, conversation_id: str) -> str:
        """Hash: the last Zalo messages sent into a FreshChat conversation (at most
        RECEIPTS_KEPT), msg id -> `<sent ms>|<state>|<at>|<reported>|<quota>`: how far each got
        (sent, received, seen), what agents were told, the quota that paid (app/bridge/mapping.py).
        Expires 8 days after the conversation's last reply."""
        return f"{self.prefix}replies:{conversation_id}"

    # Receipts as written before issue 3 (a hash per sent message and a list per conversation):
    # nothing writes or reads them any more; named so a backup still restores them and the key
    # table knows them. Each expired at most 8 days after its last write.
    def receipt(self, zalo_message_id: str) -> str:
        """Legacy: one sent Zalo message's receipt hash."""
        return f"{self.prefix}receipt:{zalo_message_id}"

    def receipts_of(self, conversation_id: str) -> str:
        """Legacy: list of the Zalo message ids last sent into a FreshChat conversation."""
        return f"{self.prefix}receipts:{conversation_id}"

    def message_from_zalo(self, zalo_message_id: str) -> str:
        """The FreshChat message a Zalo message was relayed as, or relayed from (MessageMap)."""
        return f"{self.prefix}msg:z:{zalo_message_id}"

    def message_from_freshchat(self, fc_message_id: str) -> str:
        """The (first) Zalo message a FreshChat message was relayed as, or relayed from."""
        return f"{self.prefix}msg:fc:{fc_message_id}"

    def survey_asked(self, conversation_id: str) -> str:
        """When (epoch ms) the customer of a conversation was asked for a rating: present for
        24 h after the question, deleted by their rating (app/relay/survey.py)."""
        return f"{self.prefix}survey:{conversation_id}"

    @property
    def template_statuses(self) -> str:
        """Hash template id -> JSON {status, reason, at}: Zalo's latest change_template_status
        of each of the OA's templates (app/operations/template_status.py), bounded by templates."""
        return f"{self.prefix}templates:status"

    def agent_name(self, agent_id: str) -> str:
        """A FreshChat agent's first name, cached for the reply signature ("" = unknown)."""
        return f"{self.prefix}agent:{agent_id}"

    def last_webhook(self, source: str) -> str:
        """When a verified webhook from `source` last reached this connection (epoch seconds)."""
        return f"{self.prefix}webhook:last:{source}"

    # -- catch-up from Zalo's history (app/relay/catchup.py)
    @property
    def catchup(self) -> str:
        """Hash: the last finished catch-up (when, its window, how many it found and queued);
        from the first activation, `activated_at` and `history_offer` (open, queued, declined),
        and once the history was brought in, `imported` and `imported_at`."""
        return f"{self.prefix}catchup"

    @property
    def catchup_lock(self) -> str:
        """Held while a catch-up of this connection runs: one at a time, across every worker."""
        return f"{self.prefix}catchup:lock"

    def catchup_guard(self, trigger: str) -> str:
        """Set when the quiet-webhooks trigger queued a catch-up: not again in the quiet period."""
        return f"{self.prefix}catchup:guard:{trigger}"

    @property
    def catchup_pending(self) -> str:
        """Set while a queued catch-up has not started (its trigger's name, expiring): triggers
        firing meanwhile are merged into it; one firing after it started queues another."""
        return f"{self.prefix}catchup:pending"

    @property
    def forgotten(self) -> str:
        """Set: FreshChat users of people forgotten on request (CONTRACT §7), never linked
        again, so the person's next message starts a new user; bounded by such requests."""
        return f"{self.prefix}forgotten"

    # -- failures
    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    @property
    def dead_order(self) -> str:
        return f"{self.prefix}dead:order"

    @property
    def errors(self) -> str:
        return f"{self.prefix}errors"

    # -- what operators look at (app/operations/journal.py)
    @property
    def journal(self) -> str:
        """Zset item id -> epoch seconds of its latest recorded outcome."""
        return f"{self.prefix}journal"

    @property
    def journal_items(self) -> str:
        """Hash item id -> that outcome (JSON)."""
        return f"{self.prefix}journal:items"

    def relayed(self, direction: str, day: str) -> str:
        """Messages relayed in `direction` ("in"/"out") on the UTC `day` (YYYYMMDD), expiring."""
        return f"{self.prefix}relayed:{direction}:{day}"

    @property
    def metrics(self) -> str:
        """Hash `<family>|<label>|...` -> count: the worker's counters (app/operations/counters.py)."""
        return f"{self.prefix}metrics"

    @property
    def verifier_files(self) -> str:
        """Hash code -> the exact bytes of Zalo's zalo_verifier<code>.html the operator uploaded."""
        return f"{self.prefix}verifier:files"

    @property
    def last_check(self) -> str:
        """The last connection test's result (app/operations/startup.py): JSON, rewritten at each test."""
        return f"{self.prefix}check:last"

    @property
    def zalo_templates(self) -> str:
        """The OA's approved Zalo templates and when they were read (app/commands/catalogue.py):
        JSON, rewritten at each read, expiring after a few minutes."""
        return f"{self.prefix}zalo:templates"

    # -- Zalo's token pair and OAuth
    @property
    def zalo_token(self) -> str:
        return f"{self.prefix}zalo:token"

    @property
    def zalo_token_lock(self) -> str:
        return f"{self.prefix}zalo:token:lock"

    def oauth_state(self, state: str) -> str:
        return f"{self.prefix}oauth:{state}"

    def oauth_return(self, state: str) -> str:
        """Where the callback sends the browser back to, when the console started the flow."""
        return f"{self.prefix}oauth:{state}:return"

    def oauth_link(self, token: str) -> str:
        """A one-time link to start OAuth (app/web/oauth.py), so no admin token travels in a URL."""
        return f"{self.prefix}oauth:link:{token}"

    # -- rate limits and breakers, per partner
    def rate(self, partner: str) -> str:
        """The partner's token bucket, its shared pause a field of it (app/bridge/ratelimit.py)."""
        return f"{self.prefix}rl:{partner}"

    def breaker_ok(self, partner: str) -> str:
        return f"{self.prefix}breaker:{partner}:ok"

    def breaker_open(self, partner: str) -> str:
        return f"{self.prefix}breaker:{partner}:open"

    def breaker_probing(self, partner: str) -> str:
        return f"{self.prefix}breaker:{partner}:probing"


DEFAULT_KEYS = Keys()


# -- one person's records (app/operations/forget.py, CONTRACT §7 "forget a person") ------------------
# How each family of `Keys` is named: by a Zalo user, by one of their FreshChat conversations, by
# one of their messages (Zalo's id or FreshChat's), by an event id (`seen(source, id)`), or by an
# effect whose name holds one of those; `forget` deletes every family listed here for the person.
# Every member of `Keys` is in PERSONAL or NOT_PERSONAL (a test checks it): a new family is one
# line here, and cannot be left out of forgetting silently.
USER, CONVERSATION, ZALO_MESSAGE, FRESHCHAT_MESSAGE, EVENT, EFFECT = (
    "user",
    "conversation",
    "zalo_message",
    "freshchat_message",
    "event",
    "effect",
)
PERSONAL = {
    "zalo_user": USER,
    "last_seen": USER,
    "sending_to": USER,
    "conversation": CONVERSATION,
    "receipts_of": CONVERSATION,
    "replies": CONVERSATION,
    "survey_asked": CONVERSATION,
    "unfollowed": USER,
    "sent": ZALO_MESSAGE,
    "receipt": ZALO_MESSAGE,
    "message_from_zalo": ZALO_MESSAGE,
    "message_from_freshchat": FRESHCHAT_MESSAGE,
    "seen": EVENT,
    "done": EFFECT,
    "flight": EFFECT,
}
# Families that name nobody, or hold entries of many people that forgetting removes one by one
# (ENTRIES: the journal, dead letters, last errors; the scheduler's lanes by USER_LANES and
# CONVERSATION_LANES).
ENTRIES = ("journal", "journal_items", "dead", "dead_order", "errors")
NOT_PERSONAL = (
    *ENTRIES,
    "forgotten",
    "reconcile",
    "agent_name",
    "last_webhook",
    "catchup",
    "catchup_lock",
    "catchup_guard",
    "catchup_pending",
    "relayed",
    "metrics",
    "verifier_files",
    "last_check",
    "zalo_token",
    "zalo_token_lock",
    "oauth_state",
    "oauth_return",
    "oauth_link",
    "rate",
    "breaker_ok",
    "breaker_open",
    "breaker_probing",
    "media",
    "template_statuses",
    "zalo_templates",
)
USER_LANES = (lambda user: f"in:{user}", window_lane)  # before lane_for
CONVERSATION_LANES = (lambda conversation: f"out:{conversation}", receipts_lane, survey_lane)


# -- the bridge's key families (what `bridge restore` may write back, app/operations/backup.py) ----------
def _shapes(keys: Keys) -> list[str]:
    """Every key a connection's `Keys` builds, with `*` for each argument."""
    found = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name == "media":
            continue
        if isinstance(member, property):
            found.append(getattr(keys, name))
        elif inspect.isfunction(member):
            found.append(member(keys, *["*"] * (len(inspect.signature(member).parameters) - 1)))
    return found


FAMILIES = (
    DUE,
    WAKE,
    HEARTBEAT,
    WEB_STARTED,
    VERIFIER_OWNERS,
    CONNECTIONS,
    CONNECTIONS_STAMPS,
    CONNECTIONS_VERSION,
    CONNECTIONS + ":lock",  # app/connections/service.py: one change at a time
    lane("*"),
    lease("*"),
    ROOT + "fcowner:*",  # conversation_owner
    ROOT + "person:*",  # person
    signin_failures("*"),
    signin_wait("*"),
    console_session("*"),
    *_shapes(Keys()),
    *_shapes(Keys("*")),
)
_FAMILY = re.compile("|".join(translate(shape) for shape in FAMILIES), re.DOTALL)


def is_bridge_key(name: str) -> bool:
    """Whether `name` is a key this file names: anything else in a backup (an RQ job, whose
    `data` is pickled code, or a key of some other program) is never written back."""
    return bool(_FAMILY.fullmatch(name))


# -- what bounds each key family (docs/delivery.md, "Key families") ----------------------------
# Redis must not grow with the number of messages: each family either expires (TTL: it may be
# one key per message or per client, gone after its TTL) or its count is bounded by what the
# bridge serves: per USER (a Zalo user of a connection), per CONVERSATION (a FreshChat
# conversation or a lane), per CONNECTION, or one per BRIDGE. DEAD_LETTERS are the one
# exception: messages that failed for good, kept until an operator replays or drops them.
TTL, USER, CONVERSATION, CONNECTION, BRIDGE, DEAD_LETTERS = (
    "ttl",
    "user",
    "conversation",
    "connection",
    "bridge",
    "dead",
)

KEYS_BOUNDS = {  # a connection's own families, by `Keys` member
    "seen": TTL,  # DEDUPE_TTL_SECONDS: a redelivery comes within it
    "done": TTL,  # DEDUPE_TTL_SECONDS: a re-run of an effect comes within it
    "flight": TTL,  # DEDUPE_TTL_SECONDS; no longer written (the record is in `done`)
    "sending_to": TTL,  # the echo patience (about a minute past the send's settling)
    "reconcile": CONNECTION,
    "zalo_user": USER,
    "last_seen": TTL,  # an hour; no longer written (the user hash's seen_at)
    "conversation": CONVERSATION,
    "sent": TTL,  # DEDUPE_TTL_SECONDS: echoes come within seconds, quotes and reactions within days
    "replies": CONVERSATION,  # at most RECEIPTS_KEPT records, and 8 days after the last reply
    "receipt": TTL,  # legacy, 8 days
    "receipts_of": TTL,  # legacy, 8 days
    "message_from_zalo": TTL,  # DEDUPE_TTL_SECONDS: a quote names a recent message
    "message_from_freshchat": TTL,  # DEDUPE_TTL_SECONDS
    "agent_name": TTL,  # an hour (5 minutes for an unknown agent)
    "last_webhook": CONNECTION,  # one per partner
    "catchup": CONNECTION,
    "catchup_lock": TTL,
    "catchup_guard": TTL,
    "catchup_pending": TTL,
    "dead": DEAD_LETTERS,
    "dead_order": DEAD_LETTERS,
    "errors": CONNECTION,  # the last ERRORS_KEPT
    "journal": CONNECTION,  # 2 000 entries (+ 64 each way between tidyings), 7 days shown, TTL 8
    "journal_items": CONNECTION,
    "relayed": TTL,  # two days
    "metrics": CONNECTION,  # one field per counter and label
    "verifier_files": CONNECTION,
    "last_check": CONNECTION,
    "zalo_token": CONNECTION,
    "zalo_token_lock": TTL,
    "oauth_state": TTL,
    "oauth_return": TTL,
    "oauth_link": TTL,
    "rate": TTL,  # an hour idle (its pause a field: it outlives the pause)
    "breaker_ok": TTL,
    "breaker_open": TTL,
    "breaker_probing": TTL,
    "survey_asked": TTL,  # 24 h: a rating counts within a day of the question
    "template_statuses": CONNECTION,  # one field per template, at most 1 000
    "zalo_templates": TTL,  # five minutes: /templates reads Zalo afresh
    "unfollowed": USER,  # when the user unfollowed, until they follow again
    "forgotten": USER,  # one member per person forgotten on request
}
SHARED_BOUNDS = {  # families every connection shares, by key shape
    DUE: BRIDGE,  # one member per lane with work or a timer
    WAKE: BRIDGE,
    HEARTBEAT: TTL,
    WEB_STARTED: BRIDGE,
    REPLICAS_SHORT: TTL,
    VERIFIER_OWNERS: BRIDGE,  # one field per uploaded verification file
    CONNECTIONS: BRIDGE,
    CONNECTIONS_STAMPS: BRIDGE,  # one field per stored connection
    CONNECTIONS_VERSION: BRIDGE,
    CONNECTIONS + ":lock": TTL,
    lane(window_lane("*")): USER,  # one waiting timer item
    lane(lane_for("*", window_lane("*"))): USER,
    lane(receipts_lane("*")): CONVERSATION,  # one waiting timer item
    lane(lane_for("*", receipts_lane("*"))): CONVERSATION,
    lane(survey_lane("*")): CONVERSATION,  # one waiting question item
    lane(lane_for("*", survey_lane("*"))): CONVERSATION,
    ROOT + "person:*": USER,  # one per person who wrote through a merging connection
    lane("*"): CONVERSATION,  # deleted when empty
    lease("*"): TTL,
    ROOT + "fcowner:*": CONVERSATION,  # one field per conversation
    signin_failures("*"): TTL,
    signin_wait("*"): TTL,
    console_session("*"): TTL,
}


def _bound_shapes() -> list[tuple[re.Pattern[str], str]]:
    shapes = list(SHARED_BOUNDS.items())
    for name, bound in KEYS_BOUNDS.items():
        for keys in (Keys(), Keys("*")):
            member = getattr(Keys, name)
            if isinstance(member, property):
                shapes.append((getattr(keys, name), bound))
            else:
                shapes.append((member(keys, *["*"] * (len(inspect.signature(member).parameters) - 1)), bound))
    shapes.sort(key=lambda shape: -len(shape[0].replace("*", "")))  # the most specific first
    return [(re.compile(translate(shape), re.DOTALL), bound) for shape, bound in shapes]


_BOUNDS = _bound_shapes()


def bound_of(name: str) -> str | None:
    """What bounds the family of key `name` (TTL, USER, ...), None for a key this file does not name."""
    return next((bound for shape, bound in _BOUNDS if shape.fullmatch(name)), None)
