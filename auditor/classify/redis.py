"""Redis serialization protocol (RESP2/RESP3, https://redis.io/docs/latest/develop/reference/protocol-spec/).

Clients send commands as arrays of bulk strings: ``*<n>\\r\\n$<len>\\r\\n<name>\\r\\n...``, which
is specific enough on any port when the first string's length is right and the name is a
word; inline commands (``set key 1``) only on Redis's ports. Server replies alone are short
and generic (``+OK``, ``:1``); only the ones Redis has and
the other text protocols have not count (``+PONG``, ``-NOAUTH``, ``-WRONGTYPE``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTS = frozenset({6379, 6380, 26379})
_COMMAND = re.compile(rb"\*([1-9][0-9]{0,5})\r\n\$([1-9][0-9]{0,2})\r\n")
_REPLIES = (b"+PONG\r\n", b"-NOAUTH ", b"-WRONGTYPE ", b"-ERR unknown command ",
            b"-ERR wrong number of arguments for ", b"-MOVED ", b"-ASK ", b"-LOADING ",
            b"-READONLY ", b"-MASTERDOWN ", b"-WRONGPASS ", b"-NOPERM ",
            b"-ERR Protocol error")  # fmt: skip
#: inline commands (a line of words, for telnet-like clients), believed on Redis's ports only
INLINE = frozenset(
    b"GET SET INCR DECR DEL EXISTS EXPIRE TTL KEYS PING AUTH INFO SELECT HGET HSET HGETALL "
    b"LPUSH RPUSH LPOP RPOP LRANGE SADD SMEMBERS ZADD ZRANGE MGET MSET SUBSCRIBE PUBLISH "
    b"CONFIG CLIENT FLUSHALL FLUSHDB DBSIZE MONITOR".split()
)


def is_command(head: bytes) -> bool:
    m = _COMMAND.match(head)
    if m is None:
        return False
    start = m.end()
    end = start + int(m.group(2))
    name = head[start:end]
    if not name:
        return False
    if not name.replace(b"_", b"").replace(b"-", b"").replace(b".", b"").isalpha():
        return False
    return len(head) < end + 2 or head[end : end + 2] == b"\r\n"


def is_inline(line: bytes) -> bool:
    """An inline command: a known command word, then arguments or the end of the line."""
    word = line.split(b" ", 1)[0].upper()
    return word in INLINE and (len(line) == len(word) or line[len(word)] == 0x20)


def is_reply(head: bytes) -> bool:
    return head.startswith(_REPLIES)


def redis_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": False}
