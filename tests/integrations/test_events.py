"""to_event: each provider's one classification of a webhook (kind, lane, dedupe id, verdict)."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from app.integrations import events
from app.integrations.freshchat import schemas as freshchat
from app.integrations.zalo import schemas as zalo
from sandbox.helpers import FIXTURES, load_fixture

USER = "246845883529197922"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
IN, OUT = f"in:{USER}", f"out:{CONV}"
VISITOR = "in:anon:2a8f6c1d9e3b47f5a0c2"  # an anonymous visitor's lane: never an OA user's

ZALO = {
    # A template's status: a lane of its template, so its changes are kept in order.
    "change_template_status": (
        "queue",
        "template_status",
        "tpl:203972",
        "change_template_status:203972:ENABLE:1700000020000",
    ),
    "change_template_status__rejected": (
        "queue",
        "template_status",
        "tpl:203972",
        "change_template_status:203972:REJECT:1700000080000",
    ),
    # a person's own events join their lane; without a follower id they are recorded only
    "follow": ("queue", "follow", IN, f"follow:1700000009000:{USER}"),
    "unfollow": ("queue", "follow", IN, f"unfollow:1700000010000:{USER}"),
    "user_submit_info": ("queue", "shared_info", IN, f"user_submit_info:1700000011000:{USER}"),
    "user_submit_info__full_address": ("queue", "shared_info", IN, f"user_submit_info:1700000012000:{USER}"),
    "user_reacted_message": (
        "queue",
        "reaction",
        IN,
        "user_reacted_message:41b2c3d4e5f6a7b8c9d0:/-heart:1700000000000",
    ),
    "user_reacted_message__removed": (
        "queue",
        "reaction",
        IN,
        "user_reacted_message:41b2c3d4e5f6a7b8c9d0:/-remove:1700000060000",
    ),
    # A receipt names the OA's message id, which the echo of that message uses as its key.
    "user_received_message": ("queue", "receipt", IN, "user_received_message:111116bca0b1d27f9f3e0002"),
    "user_recieved_message__deskie": ("queue", "receipt", IN, "user_received_message:111116bca0b1d27f9f3e0002"),
    "user_seen_message": ("queue", "receipt", IN, "user_seen_message:111116bca0b1d27f9f3e0002"),
    "user_read_message__deskie": ("queue", "receipt", IN, "user_seen_message:111116bca0b1d27f9f3e0002"),
    "anonymous_send_file": ("queue", "user_message", VISITOR, "aa33c3d4e5f6a7b8c9d0"),
    "anonymous_send_image": ("queue", "user_message", VISITOR, "aa22c3d4e5f6a7b8c9d0"),
    "anonymous_send_sticker": ("queue", "user_message", VISITOR, "aa44c3d4e5f6a7b8c9d0"),
    "anonymous_send_text": ("queue", "user_message", VISITOR, "aa11c3d4e5f6a7b8c9d0"),
    "oa_send_anonymous_text": ("queue", "oa_message", VISITOR, "aa55c3d4e5f6a7b8c9d0"),
    "oa_send_text__api_echo": ("queue", "oa_message", IN, "41b2c3d4e5f6a7b8c9d0"),
    "oa_send_text__console_admin": ("queue", "oa_message", IN, "31b2c3d4e5f6a7b8c9d0"),
    "oa_send_text__other_tool": ("queue", "oa_message", IN, "51b2c3d4e5f6a7b8c9d0"),
    "user_send_audio": ("queue", "user_message", IN, "e1b2c3d4e5f6a7b8c9d0"),
    "user_send_audio__voice_type": ("queue", "user_message", IN, "71b2c3d4e5f6a7b8c9d0"),
    "user_send_business_card": ("queue", "user_message", IN, "21b2c3d4e5f6a7b8c9d0"),
    "user_send_business_card__title_only": ("queue", "user_message", IN, "91b2c3d4e5f6a7b8c9d0"),
    "user_send_file": ("queue", "user_message", IN, "d1b2c3d4e5f6a7b8c9d0"),
    "user_send_gif": ("queue", "user_message", IN, "b1b2c3d4e5f6a7b8c9d0"),
    "user_send_image": ("queue", "user_message", IN, "a1b2c3d4e5f6a7b8c9d0"),
    "user_send_image__photo_type": ("queue", "user_message", IN, "61b2c3d4e5f6a7b8c9d0"),
    "user_send_link": ("queue", "user_message", IN, "11b2c3d4e5f6a7b8c9d0"),
    "user_send_location": ("queue", "user_message", IN, "01b2c3d4e5f6a7b8c9d0"),
    "user_send_location__message_location": ("queue", "user_message", IN, "81b2c3d4e5f6a7b8c9d0"),
    "user_send_sticker": ("queue", "user_message", IN, "c1b2c3d4e5f6a7b8c9d0"),
    "user_send_text": ("queue", "user_message", IN, "96d3cdf3af150460909"),
    "user_send_text__quote": ("queue", "user_message", IN, "a2b2c3d4e5f6a7b8c9d0"),
    "user_send_video": ("queue", "user_message", IN, "f1b2c3d4e5f6a7b8c9d0"),
}
FRESHCHAT = {
    "conversation_assignment": (
        "queue",
        "conversation_state",
        OUT,
        f"conversation_assignment:{CONV}:2022-11-22T11:00:00.000Z",
    ),
    "conversation_reopen": ("queue", "conversation_state", OUT, f"conversation_reopen:{CONV}:2022-11-22T10:55:22.272Z"),
    "conversation_resolution": (
        "queue",
        "conversation_state",
        OUT,
        f"conversation_resolution:{CONV}:2022-04-01T06:16:34.207Z",
    ),
    "message_create__agent_file": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000003"),
    "message_create__agent_file_without_url": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000012"),
    "message_create__agent_image": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000002"),
    "message_create__agent_image_expired_url": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000013"),
    "message_create__agent_in_reply_to": ("queue", "agent_message", OUT, "b945de56-0000-4000-8000-000000000001"),
    "message_create__agent_text": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000001"),
    "message_create__bot_quick_replies": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000011"),
    "message_create__bot_text": ("queue", "agent_message", OUT, "a834cd45-0000-4000-8000-000000000006"),
    "message_create__legacy_msg_parts": ("queue", "agent_message", OUT, "legacy-0001"),
    "message_create__agent_system_reopened": ("ignored", "", "", ""),
    "message_create__private_note": ("ignored", "", "", ""),
    "message_create__user_actor": ("ignored", "", "", ""),
}
MODULES = {"zalo": (zalo, ZALO), "freshchat": (freshchat, FRESHCHAT)}


def classify(provider: str, name: str) -> events.Event:
    module = MODULES[provider][0]
    return module.to_event(module.load_event(load_fixture(provider, "webhooks", f"{name}.json")))


@pytest.mark.parametrize("provider", MODULES)
def test_every_webhook_fixture_is_classified_here(provider):
    on_disk = {p.stem for p in (FIXTURES / provider / "webhooks").glob("*.json")}
    assert on_disk == set(MODULES[provider][1])


@pytest.mark.parametrize("provider,name", [(p, n) for p, (_, table) in MODULES.items() for n in table])
def test_to_event_on_each_fixture(provider, name):
    event = classify(provider, name)
    assert (event.verdict, event.kind, event.lane, event.dedupe_id) == MODULES[provider][1][name]
    assert event.provider == provider
    if event.queued:
        assert event.payload["app_id" if provider == "zalo" else "action"]  # the validated event rides along


def test_zalo_recorded_events_answer_with_their_name_and_unknown_ones_say_so():
    nobody = zalo.to_event(zalo.load_event({**load_fixture("zalo", "webhooks", "follow.json"), "follower": {}}))
    assert (nobody.verdict, nobody.reason) == ("recorded", "follow")
    event = zalo.to_event(zalo.load_event({"event_name": "user_did_a_new_thing", "app_id": "1", "timestamp": "2"}))
    assert (event.verdict, event.name, event.reason) == (
        "unknown",
        "user_did_a_new_thing",
        "unknown event user_did_a_new_thing",
    )


def test_an_echo_of_our_own_send_is_ignored_but_a_user_message_never_is():
    echo = load_fixture("zalo", "webhooks", "oa_send_text__api_echo.json")
    asked = []
    ours = lambda msg_id: asked.append(msg_id) or True  # noqa: E731
    event = zalo.to_event(zalo.load_event(echo), is_our_send=ours)
    assert (event.verdict, event.reason, asked) == (
        "ignored",
        "echo of a message this bridge sent",
        ["41b2c3d4e5f6a7b8c9d0"],
    )
    text = zalo.to_event(zalo.load_event(load_fixture("zalo", "webhooks", "user_send_text.json")), is_our_send=ours)
    assert text.kind == "user_message" and asked == ["41b2c3d4e5f6a7b8c9d0"]


def test_freshchat_reasons_and_unknown_actions():
    assert [
        classify("freshchat", n).reason
        for n in ("message_create__agent_system_reopened", "message_create__private_note", "message_create__user_actor")
    ] == ["system message", "private note", "actor user is not relayed"]
    event = freshchat.to_event(
        freshchat.load_event({"action": "conversation_teleport", "action_time": "2022-11-22T10:55:23.126Z", "data": {}})
    )
    assert (event.verdict, event.reason) == ("unknown", "unknown event conversation_teleport")


def test_a_receipt_finds_its_user_on_whichever_side_is_not_our_oa():
    """Sources disagree on which side the OA is for receipts: the OA's own id decides."""
    received = load_fixture("zalo", "webhooks", "user_received_message.json")
    swapped = {**received, "sender": received["recipient"], "recipient": received["sender"]}
    for event in (received, swapped):
        assert zalo.to_event(zalo.load_event(event), oa_id="388613280878808645").lane == IN


def test_receipts_and_reactions_without_the_ids_they_are_about_are_invalid():
    seen = load_fixture("zalo", "webhooks", "user_seen_message.json")
    reacted = load_fixture("zalo", "webhooks", "user_reacted_message.json")
    for bad in ({**seen, "message": {"msg_ids": []}}, {**reacted, "message": {"msg_id": "41b2c3d4e5f6a7b8c9d0"}}):
        with pytest.raises(ValidationError):
            zalo.load_event(bad)


@pytest.mark.parametrize("name", ["follow", "unfollow", "user_submit_info", "user_submit_info__full_address"])
def test_a_persons_own_event_names_that_person_not_the_oa(name):
    """What a dead letter's note looks up: the user's conversation, never the OA's id."""
    assert zalo.zalo_user(load_fixture("zalo", "webhooks", f"{name}.json")) == USER
