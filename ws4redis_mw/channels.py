"""Channel naming: which Redis key a facility and an audience map to.

The key layout is django-websocket-redis's, so old ws4redis publishers and
ws4redis_mw sockets can share one Redis during a migration::

    {prefix:}broadcast:{facility}
    {prefix:}user:{username}:{facility}
    {prefix:}group:{group}:{facility}
    {prefix:}session:{session_key}:{facility}

The same key names the pub/sub channel and the string that keeps the last
message of that channel.  A facility may not contain ``:`` (nor whitespace or
control characters): otherwise ``user:a:b`` could be reached both as user
``a`` on facility ``b`` and through a facility named ``a:b``.  Nor may it, or
the prefix, contain ``{`` or ``}``: those choose a key's Redis Cluster hash
tag, which the library places itself (:mod:`ws4redis_mw.history`), and a
facility named ``a}b`` would leave a channel that no other key can share a
slot with.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable, List, Optional

__all__ = [
    "AUDIENCES",
    "SUBSCRIBE_FLAGS",
    "PUBLISH_FLAGS",
    "MAX_FACILITY_LENGTH",
    "InvalidFacility",
    "validate_facility",
    "validate_prefix",
    "channel_name",
]

#: The audiences of a channel, in the order ws4redis lists them.
AUDIENCES = ("broadcast", "user", "group", "session")
SUBSCRIBE_FLAGS = frozenset(f"subscribe-{a}" for a in AUDIENCES)
PUBLISH_FLAGS = frozenset(f"publish-{a}" for a in AUDIENCES)
#: The longest facility name accepted, in characters.
MAX_FACILITY_LENGTH = 255


class InvalidFacility(ValueError):
    """The facility name cannot be used as part of a channel name."""


def validate_facility(facility: str) -> str:
    """Return ``facility`` if it may name a channel, else raise :class:`InvalidFacility`."""
    if not facility:
        raise InvalidFacility("the facility name is empty")
    if len(facility) > MAX_FACILITY_LENGTH:
        raise InvalidFacility(f"the facility name is longer than {MAX_FACILITY_LENGTH} characters")
    for char in facility:
        if char == ":":
            raise InvalidFacility("the facility name contains ':'")
        if char in "{}":
            raise InvalidFacility("the facility name contains '{' or '}'")
        if char.isspace() or unicodedata.category(char)[0] == "C":
            raise InvalidFacility("the facility name contains whitespace or a control character")
    return facility


def validate_prefix(prefix: Optional[str]) -> Optional[str]:
    """Return ``prefix`` (``WS4REDIS_PREFIX``) if every key may start with it, else raise ``ValueError``."""
    if prefix and ("{" in prefix or "}" in prefix):
        raise ValueError(f"{prefix!r} contains '{{' or '}}': the Redis Cluster hash tag of each key is placed "
                         "by ws4redis_mw (a tag in the prefix would put every channel of the site in one slot)")
    return prefix


def key_prefix(prefix: Optional[str]) -> str:
    """The part every key starts with: ``"prefix:"``, or nothing for ``None`` or ``""``."""
    return f"{prefix}:" if prefix else ""


def channel_name(prefix: Optional[str], audience: str, facility: str, member: Optional[str] = None) -> str:
    """The key of ``facility`` for one audience; ``member`` names the user, group or session."""
    if audience == "broadcast":
        return f"{key_prefix(prefix)}broadcast:{facility}"
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    return f"{key_prefix(prefix)}{audience}:{member}:{facility}"


def channel_names(prefix: Optional[str], audience: str, facility: str, members: Iterable[str]) -> List[str]:
    """The keys of ``facility`` for every member of one audience."""
    return [channel_name(prefix, audience, facility, m) for m in members]
