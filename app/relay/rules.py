"""Pre-delivery rules: a look at an item before its kind's handler relays it, registered here.

A rule is `rule(ctx, item, progress)`: it answers None to let the handler run as usual, or takes
the item itself and answers what a handler would (a `Relayed`, NOT_RELAYED), never None. Rules
run in the order listed, the handler after the last: the drain asks `first` and, when no rule
took the item, calls the handler itself (workers/drain.py `by_event`), so nothing stands between
the drain and the handler. A new "this message is not what it seems" feature is a rule in its own
module and one line below; the relay code does not change.
"""

from __future__ import annotations

from collections.abc import Callable

from app.bridge.lanes import Item
from app.integrations import events
from app.relay import survey
from app.relay.context import Progress, RelayContext

Handler = Callable[[RelayContext, Item, Progress], object]

RULES: dict[str, tuple[Handler, ...]] = {
    events.USER_MESSAGE: (survey.take_rating,),  # a digit 1-5 answering the survey is the agents' note
}


def first(
    ctx: RelayContext, item: Item, progress: Progress, kind: str, rules: dict[str, tuple[Handler, ...]] = RULES
) -> object | None:
    """The answer of the first rule for event `kind` that takes the item; None when none does
    (its handler relays it)."""
    for rule in rules.get(kind, ()):
        answer = rule(ctx, item, progress)
        if answer is not None:
            return answer
    return None
