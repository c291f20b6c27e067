"""Pre-delivery rules: a look at an item before its kind's handler relays it, registered here.

A rule is `rule(ctx, item, progress)`: it answers None to let the handler run as usual, or takes
the item itself and answers what a handler would (a `Relayed`, NOT_RELAYED), never None. Rules
run in the order listed, the handler after the last. A new "this message is not what it seems"
feature is a rule in its own module and one line below; the relay code does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from app.bridge.lanes import Item
from app.integrations import events
from app.relay import survey
from app.relay.context import Progress, RelayContext

Handler = Callable[[RelayContext, Item, Progress], object]

RULES: dict[str, tuple[Handler, ...]] = {
    events.USER_MESSAGE: (survey.take_rating,),  # a digit 1-5 answering the survey is the agents' note
}


def ruled(handlers: Mapping[str, Handler], rules: dict[str, tuple[Handler, ...]] = RULES) -> dict[str, Handler]:
    """`handlers` with each kind's rules in front of its handler."""
    return {kind: _first(rules[kind], handler) if rules.get(kind) else handler for kind, handler in handlers.items()}


def _first(rules: tuple[Handler, ...], handler: Handler) -> Handler:
    def handle(ctx: RelayContext, item: Item, progress: Progress) -> object:
        for rule in rules:
            answer = rule(ctx, item, progress)
            if answer is not None:
                return answer
        return handler(ctx, item, progress)

    return handle
