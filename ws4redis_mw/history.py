"""Per-channel history: its Redis keys, the publish script, the envelopes and the recovery rules (no I/O).

Design rules of this module:

* **Which channels.**  ``WS4REDIS_HISTORY`` is ``None`` (no history), a dict
  ``{"size": 100, "ttl": 300}`` for every channel, or a callable
  ``f(facility, audience) -> dict or None`` (or its dotted path) deciding per
  channel.  :class:`HistoryPolicy` answers "this channel's history" for a
  channel key and remembers the answer.
* **In Redis.**  A channel with history has a stream (the last ``size``
  publications, dropped ``ttl`` seconds after the last one) and a small hash
  holding its *epoch* and its last *offset*, kept ``meta_ttl`` seconds: by
  default as long as the stream, so a channel leaves nothing behind; a longer
  ``meta_ttl`` lets a client that saw everything of a channel quiet for longer
  than ``ttl`` still recover (nothing missed) instead of reloading.  :data:`PUBLISH_SCRIPT` does everything of one publication in
  one atomic step: next offset, ``XADD`` with that offset as the entry's id,
  ``PUBLISH`` of an :func:`envelope <parse_published>` carrying epoch and
  offset, and the kept message (``WS4REDIS_EXPIRE``) as before.  A hash that
  is gone (Redis restarted without persistence, expiry, eviction) gets a new
  random epoch and its stream is emptied, so an old offset can never be taken
  for a valid one.
* **On the wire.**  A socket that did not ask for ``recover`` gets raw
  payloads exactly as before.  A socket that did gets JSON objects
  (:func:`message_frame`, :func:`recovery_frame`): docs/protocol.md.
* **Recovering.**  :func:`recover` decides, for one channel, from the
  client's position and what the hub knows or read (:class:`View`), whether
  the client gets exactly what it missed or "not recovered"; a forged,
  future or malformed position is "not recovered", never an error.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import functools
import json
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import frames
from .channels import AUDIENCES, key_prefix

__all__ = [
    "HistoryConfig", "HistoryPolicy", "policy_for", "config_from_setting", "stream_key", "meta_key", "PUBLISH_SCRIPT", "publish_args",
    "new_epoch", "parse_published", "hash_tag", "Position", "parse_positions", "View", "Recovery", "recover", "client_name",
    "message_frame", "recovery_frame", "MAX_POSITIONS_LENGTH", "INVALID", "Publication",
    "merge_entries", "ReplayFrames", "REPLAY_FRAMES",
]

#: The longest ``recover=`` value read from a handshake, in characters; longer is "not recovered".
MAX_POSITIONS_LENGTH = 4096
#: Marks a pub/sub payload that carries an epoch and an offset: a raw payload never starts with a NUL byte and "w4h".
_MAGIC = b"\x00w4h\x00"
_EPOCH = re.compile(r"[0-9a-f]{1,32}\Z")
#: Offsets stay within what JavaScript counts exactly.
_MAX_OFFSET = 2 ** 53


@dataclasses.dataclass(frozen=True)
class HistoryConfig:
    #: Publications kept per channel.
    size: int
    #: Seconds the history is kept after the channel's last publication.
    ttl: int
    #: Seconds the epoch and last offset are kept after the last publication
    #: (at least ``ttl``); ``None``: ``ttl``, they expire with the stream.
    meta_ttl: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta_ttl", self.ttl if self.meta_ttl is None else max(self.ttl, self.meta_ttl))


def config_from_setting(value: Any) -> Optional[HistoryConfig]:
    """A :class:`HistoryConfig` from a ``WS4REDIS_HISTORY`` dict (``None`` stays ``None``); ``ValueError`` if unusable."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"must be None, a dict with 'size' and 'ttl', or a callable, not {value!r}")
    unknown = set(value) - {"size", "ttl", "meta_ttl"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)!r} (known: size, ttl, meta_ttl)")
    try:
        size, ttl = int(value["size"]), int(value["ttl"])
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is missing") from None
    if size < 1 or ttl < 1:
        raise ValueError(f"size and ttl must be at least 1, not {size!r} and {ttl!r}")
    meta_ttl = value.get("meta_ttl")
    return HistoryConfig(size, ttl, None if meta_ttl is None else int(meta_ttl))


class HistoryPolicy:
    """Which channels have history, and how much: ``WS4REDIS_HISTORY`` applied to channel keys."""

    def __init__(self, setting: Any, prefix: Optional[str]):
        from .settings import import_string_or_callable

        self._prefix = key_prefix(prefix)
        self._fixed: Optional[HistoryConfig] = None
        self._decide: Optional[Callable[[str, str], Any]] = None
        if callable(setting) or isinstance(setting, str):
            self._decide = import_string_or_callable(setting)
        else:
            self._fixed = config_from_setting(setting)
        self.for_channel = functools.lru_cache(maxsize=4096)(self._for_channel)

    @property
    def enabled(self) -> bool:
        return self._fixed is not None or self._decide is not None

    def _for_channel(self, channel: str) -> Optional[HistoryConfig]:
        if self._decide is None:
            return self._fixed
        audience, facility = _audience_and_facility(channel, self._prefix)
        return config_from_setting(self._decide(facility, audience))


_policies: Dict[int, Tuple[Any, HistoryPolicy]] = {}


def policy_for(settings: Any) -> HistoryPolicy:
    """The :class:`HistoryPolicy` of a :class:`~ws4redis_mw.settings.Settings` object, made once."""
    known = _policies.get(id(settings))
    if known is None or known[0] is not settings:
        known = _policies[id(settings)] = (settings, HistoryPolicy(settings.history, settings.prefix))
    return known[1]


def _audience_and_facility(channel: str, prefix: str) -> Tuple[str, str]:
    """``("group", "chat")`` for ``"prefix:group:staff:chat"``; ``("", key)`` for keys not of the ws4redis layout."""
    rest = channel[len(prefix):] if channel.startswith(prefix) else channel
    audience, _, tail = rest.partition(":")
    if audience not in AUDIENCES or not tail:
        return "", rest
    return audience, tail.rpartition(":")[2] if audience != "broadcast" else tail


def client_name(channel: str, prefix: Optional[str]) -> str:
    """What an opted-in client calls ``channel``: ``broadcast``, ``user``, ``session``, ``group:<name>``.

    Never the user name or session key (the page's script would see a session
    key that its cookie may hide); other keys without the prefix.
    """
    start = key_prefix(prefix)
    rest = channel[len(start):] if channel.startswith(start) else channel
    audience, _, tail = rest.partition(":")
    if audience == "broadcast" and tail:
        return "broadcast"
    if audience in ("user", "session") and ":" in tail:
        return audience
    if audience == "group" and ":" in tail:
        return "group:" + tail.rpartition(":")[0]
    return rest


def _split(channel: str, prefix: Optional[str]) -> Tuple[str, str]:
    start = key_prefix(prefix)
    return (start, channel[len(start):]) if start and channel.startswith(start) else ("", channel)


def hash_tag(channel: str) -> str:
    """The part of ``channel`` Redis Cluster hashes to find its slot: its own ``{tag}`` if it has one, else all of it."""
    start = channel.find("{")
    end = channel.find("}", start + 1) if start >= 0 else -1
    return channel[start + 1:end] if end > start + 1 else channel


def _escape_braces(text: str) -> str:
    """``text`` without ``{`` or ``}``, reversibly (``%`` is escaped too, so two texts never meet)."""
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _history_key(kind: str, channel: str, prefix: Optional[str]) -> str:
    """``{prefix:}<kind>:{<channel>}``: one key per whole channel name, in the channel's Cluster slot.

    The whole channel is in the key, so two channels never share a stream,
    whatever braces a facility, a user or a group name holds.  A channel
    without braces is its own hash tag (the layout before braces were
    handled, unchanged).  A channel with braces keeps its own ``{tag}`` (the
    key must share its slot for the publish script under Redis Cluster) and
    is named after the tag, escaped, so the braces it holds cannot close the
    tag early.  A channel whose braces form no tag hashes whole; no key can
    share that slot, so under Cluster such a channel cannot have history
    (docs/operations.md): under a single Redis it works like any other.
    """
    start, _ = _split(channel, prefix)
    if "{" not in channel and "}" not in channel:
        return f"{start}{kind}:{{{channel}}}"
    tag = hash_tag(channel)
    if "}" in tag:
        tag = _escape_braces(tag)
    return f"{start}{kind}:{{{tag}}}:{_escape_braces(channel)}"


def stream_key(channel: str, prefix: Optional[str]) -> str:
    """The stream of ``channel``'s publications: ``{prefix:}history:{<channel>}`` (see :func:`_history_key`)."""
    return _history_key("history", channel, prefix)


def meta_key(channel: str, prefix: Optional[str]) -> str:
    """The hash of ``channel``'s epoch and last offset: ``{prefix:}history-meta:{<channel>}``, in the channel's slot."""
    return _history_key("history-meta", channel, prefix)


#: KEYS: stream, meta hash, channel (the kept message's key).  ARGV: payload,
#: size, ttl, meta ttl, kept seconds (0: keep nothing), a new epoch in case
#: the channel has none, the envelope's mark, and optionally the publish
#: command (``SPUBLISH`` under Redis Cluster; ``PUBLISH`` when absent, so
#: that one script serves both and the classic arguments are unchanged).
#: Returns the offset.
PUBLISH_SCRIPT = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[2], 'offset', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%d-0', offset), 'd', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call(ARGV[8] or 'PUBLISH', KEYS[3], ARGV[7] .. epoch .. ':' .. string.format('%d', offset) .. ':' .. ARGV[1])
if tonumber(ARGV[5]) > 0 then
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[5])
end
return offset
"""


def new_epoch() -> str:
    return os.urandom(6).hex()


def publish_args(channel: str, prefix: Optional[str], config: HistoryConfig, payload: bytes, expire: int,
                 sharded: bool = False) -> Tuple[Any, ...]:
    """``EVAL`` arguments (after the script) publishing ``payload`` to ``channel`` with history.

    ``sharded``: publish with ``SPUBLISH`` (Redis Cluster; the three keys and
    the channel share one slot, so the script runs on the channel's master).
    """
    args = (3, stream_key(channel, prefix), meta_key(channel, prefix), channel,
            payload, config.size, config.ttl, config.meta_ttl, max(0, expire), new_epoch(), _MAGIC)
    return (*args, "SPUBLISH") if sharded else args


def parse_published(payload: bytes) -> Tuple[Optional[str], Optional[int], bytes]:
    """``(epoch, offset, data)`` of a pub/sub payload; ``(None, None, payload)`` for a raw one."""
    if not payload.startswith(_MAGIC):
        return None, None, payload
    try:
        epoch_end = payload.index(b":", len(_MAGIC))
        offset_end = payload.index(b":", epoch_end + 1)
        return payload[len(_MAGIC):epoch_end].decode("ascii"), int(payload[epoch_end + 1:offset_end]), payload[offset_end + 1:]
    except (ValueError, UnicodeDecodeError):
        return None, None, payload


class Publication:
    """One message from Redis, as the hub hands it to every local socket of its channel.

    ``frame`` is the raw payload's frame (the original protocol), encoded once;
    :meth:`envelope` the JSON frame for opted-in sockets, encoded at most once.
    """

    __slots__ = ("channel", "data", "epoch", "offset", "frame", "_envelope")

    def __init__(self, channel: str, data: bytes, epoch: Optional[str] = None, offset: Optional[int] = None):
        self.channel = channel
        self.data = data
        self.epoch = epoch
        self.offset = offset
        self.frame = frames.encode_message(data)
        self._envelope: Optional[Tuple[str, bytes]] = None

    def envelope(self, name: str) -> bytes:
        """This publication for an opted-in client that calls its channel ``name``."""
        if self._envelope is None or self._envelope[0] != name:
            self._envelope = (name, message_frame(name, self.data, self.epoch, self.offset))
        return self._envelope[1]

    def __repr__(self) -> str:
        return f"<Publication {self.channel} {self.epoch}:{self.offset} {self.data[:20]!r}>"


# -- recovery ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a client is in a channel: the epoch it knows ("" for none yet) and the last offset it got."""

    epoch: str
    offset: int


#: A position that can never be recovered (a malformed entry).
INVALID = Position("-", -1)


def parse_positions(value: str) -> Optional[Dict[str, Position]]:
    """The ``recover=`` value of a handshake: client channel name -> position; ``None`` if it is malformed.

    ``""`` (a bare ``recover`` flag) is no position at all.  An entry that is
    not ``{"epoch": <hex>, "offset": <int >= 0>}`` maps to a position that
    is never recovered.
    """
    if not value:
        return {}
    if len(value) > MAX_POSITIONS_LENGTH:
        return None
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than the parser's stack
        return None
    if not isinstance(data, dict):
        return None
    positions = {}
    for name, entry in data.items():
        epoch = entry.get("epoch") if isinstance(entry, dict) else None
        offset = entry.get("offset") if isinstance(entry, dict) else None
        valid = (isinstance(epoch, str) and (epoch == "" or _EPOCH.match(epoch) is not None)
                 and type(offset) is int and 0 <= offset < _MAX_OFFSET and (epoch != "" or offset == 0))
        positions[str(name)] = Position(epoch, offset) if valid else INVALID  # type: ignore[arg-type]
    return positions


@dataclasses.dataclass(frozen=True)
class View:
    """What is known of a channel's history: its epoch (``None``: never published), last offset, and publications.

    ``entries`` are ``(offset, data)`` in order, contiguous, ending at ``top``
    or earlier (those after ``top`` are left out); they start wherever the
    read or the hub's memory started.
    """

    epoch: Optional[str]
    top: int
    entries: Sequence[Tuple[int, bytes]] = ()


@dataclasses.dataclass(frozen=True)
class Recovery:
    recovered: bool
    #: The publications to replay, in order.
    replay: Sequence[Tuple[int, bytes]]


def recover(position: Position, view: View, max_recover: int) -> Recovery:
    """Whether a client at ``position`` gets exactly what it missed from ``view``, and what that is."""
    not_recovered = Recovery(False, ())
    if position.epoch == "":
        # It joined before anything was published: whatever exists now is
        # what it missed, if the history still starts at offset 1.
        if view.epoch is None:
            return Recovery(True, ())
    elif position.epoch != view.epoch:
        return not_recovered
    if position.offset > view.top:
        return not_recovered
    missed = view.top - position.offset
    if missed == 0:
        return Recovery(True, ())
    if missed > max_recover:
        return not_recovered
    replay = [entry for entry in view.entries if position.offset < entry[0] <= view.top]
    if len(replay) != missed or replay[0][0] != position.offset + 1:
        return not_recovered  # trimmed or expired meanwhile
    return Recovery(True, replay)


# -- frames for opted-in clients ---------------------------------------------------


def _json_frame(value: Dict[str, Any]) -> bytes:
    return frames.encode_message(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def message_frame(name: str, data: bytes, epoch: Optional[str] = None, offset: Optional[int] = None, kept: bool = False) -> bytes:
    """``{"type": "message", "channel": ..., "data": ..., "epoch": ..., "offset": ...}`` as a text frame."""
    envelope: Dict[str, Any] = {"type": "message", "channel": name}
    try:
        envelope["data"] = data.decode("utf-8")
    except UnicodeDecodeError:
        envelope["data_base64"] = base64.b64encode(data).decode("ascii")
    if epoch is not None and offset is not None:
        envelope["epoch"], envelope["offset"] = epoch, offset
    if kept:
        envelope["kept"] = True
    return _json_frame(envelope)


class ReplayFrames:
    """Envelopes of replayed publications, encoded once per process and shared by every socket that replays them.

    A storm of reconnecting clients replays the same few publications to
    each; encoding a 64 KiB payload as JSON costs about 250 µs, which was
    most of a recovering handshake's CPU.  Within an epoch an offset names
    one publication of its channel, so ``(channel, name, epoch, offset)`` is
    the key; at most ``max_bytes`` of frames are held, the least recently
    used dropped first.
    """

    def __init__(self, max_bytes: int = 4 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.size = 0
        self._frames: "collections.OrderedDict[Tuple[str, str, str, int], bytes]" = collections.OrderedDict()

    def get(self, channel: str, name: str, data: bytes, epoch: str, offset: int) -> bytes:
        key = (channel, name, epoch, offset)
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
            return frame
        frame = message_frame(name, data, epoch, offset)
        if len(frame) <= self.max_bytes:
            self._frames[key] = frame
            self.size += len(frame)
            while self.size > self.max_bytes:
                self.size -= len(self._frames.popitem(last=False)[1])
        return frame


#: The process's :class:`ReplayFrames`.
REPLAY_FRAMES = ReplayFrames()


def recovery_frame(channels: Dict[str, Tuple[Optional[str], int, bool]], recovered: bool, missed: int) -> bytes:
    """The first frame an opted-in client gets: each history channel's position, and what recovery did."""
    return _json_frame({
        "type": "recovery", "recovered": recovered, "missed": missed,
        "channels": {name: {"epoch": epoch, "offset": offset, "recovered": ok} for name, (epoch, offset, ok) in channels.items()},
    })


def merge_entries(older: Sequence[Tuple[int, bytes]], newer: Sequence[Tuple[int, bytes]]) -> List[Tuple[int, bytes]]:
    """``older`` followed by what ``newer`` adds after it, if the two join without a hole; else ``newer``."""
    if not older:
        return list(newer)
    last = older[-1][0]
    rest = [entry for entry in newer if entry[0] > last]
    if rest and rest[0][0] != last + 1:
        return list(newer)
    return list(older) + rest
