"""Redis replies as text.

The client is made without `decode_responses` (app/extensions.py), so every reply is bytes;
redis-py types them `bytes | str`, either mode's. `text` reads one as the str it stands for.
"""


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
