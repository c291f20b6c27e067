"""`python -m bench.redis_cost`: the worker's round trips per relayed message, counted.

Counts, not times: each message's worker turn (claim, relay, record) is a fixed sequence of
Redis round trips, listed in docs/delivery.md. A change that adds one to the path shows here."""

from __future__ import annotations

from bench.redis_cost import run

# docs/delivery.md "Round trips of one message": the worker's side (the webhook's is its own).
WORKER_ROUND_TRIPS = {"Zalo text": 6, "agent reply": 6}
# ... and its Redis commands (INFO's count, scripts' inner calls included): 43 and 47 on fc5f0b4;
# 34 and 38 before take.lua read the two breaker marks' PTTL with the lease (no round trip more).
WORKER_COMMANDS = {"Zalo text": 36, "agent reply": 40}


def test_one_message_costs_the_listed_round_trips_and_no_more():
    (_, zalo_text), (_, agent_reply) = run(5)

    assert zalo_text["worker_round_trips_fewest"] <= WORKER_ROUND_TRIPS["Zalo text"]
    assert agent_reply["worker_round_trips_fewest"] <= WORKER_ROUND_TRIPS["agent reply"]
    assert zalo_text["worker_commands_fewest"] <= WORKER_COMMANDS["Zalo text"]
    assert agent_reply["worker_commands_fewest"] <= WORKER_COMMANDS["agent reply"]
    made_by = agent_reply["round_trips_of_last"]["worker"]
    assert sum("subscribers.py:publish" in who for who in made_by) == 1  # the pop and every record, once
    assert not any(who.startswith("SCRIPT") for who in made_by)  # no SCRIPT EXISTS before a pipeline
    assert not any("Lanes.renew" in who or "Lanes.head" in who for who in made_by)
    assert not any(who.startswith("ZRANGEBYSCORE") for who in made_by)  # the doorbell and the pop name the lanes
    for side in (agent_reply, zalo_text):  # the limiter's turn comes with the in-flight record
        assert not any("RateLimiter" in who for who in side["round_trips_of_last"]["worker"])
    # the user's hash is read with the post's record, and touched with its result
    assert not any("Mapping" in who for who in zalo_text["round_trips_of_last"]["worker"])
    assert not any("Mapping" in who for who in made_by)  # the reply's recipient is read with its in-flight record
    assert zalo_text["commands"] > 0 and agent_reply["commands"] > 0
