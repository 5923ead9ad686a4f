"""The lines subtree of a bulk entry, built as lines stream past (pure: no I/O).

A bulk entry's lines are the leaves of their own RFC 9162 tree; the entry's
leaf commits to its root and size. Millions of lines pass through here, so
each line's canonical data is formatted directly — byte for byte what
`rules.line_content` gives (a test holds them equal) — and only tile roots
are kept: the full nodes from level `TILE_LEVEL` up are stored, anything
lower is recomputed from the 256 lines of one tile when a proof needs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from gongji.ledger import merkle

#: Full nodes of this level and above are stored; a tile of 2**TILE_LEVEL lines recomputes the rest.
TILE_LEVEL = 8
TILE = 1 << TILE_LEVEL
#: A line as the subtree reads it: (account_code, amount_fen, line_no).
LineRow = tuple[str, int, int]

_sha256 = hashlib.sha256


def json_string(text: str) -> str:
    """`text` as a JSON string exactly as `rules.canonical` writes it (UTF-8, only `"`, `\\` and controls escaped)."""
    if '"' in text or "\\" in text or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return f'"{text}"'


def line_leaf_format(uid: str) -> str:
    """%-format of one line's canonical data, filled with (account as JSON string, amount, line number)."""
    return '{"account":%s,"amount":%d,"entry":' + json_string(uid).replace("%", "%%") + ',"line":%d,"type":"line"}'


def line_leaves(uid: str, rows: Iterable[LineRow]) -> list[bytes]:
    """The leaf hashes of lines of entry `uid`: SHA-256(0x00 ‖ rules.line_content(…)) of each."""
    form = "\x00" + line_leaf_format(uid)
    sha256 = _sha256
    leaves: list[bytes] = []
    append = leaves.append
    for code, amount, line_no in rows:
        if '"' in code or "\\" in code or not code.isprintable():
            append(sha256((form % (json.dumps(code, ensure_ascii=False), amount, line_no)).encode()).digest())
        else:
            append(sha256((form % ('"' + code + '"', amount, line_no)).encode()).digest())
    return leaves


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """The full nodes over consecutive leaves, level by level from the leaves up (a trailing odd node has no parent)."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([_sha256(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)])
    return levels


class LinesTree:
    """The lines subtree, fed leaf hashes in line order.

    Keeps the roots of complete tiles and the leaves of the tile being
    filled: memory stays at 32 bytes per 256 lines.
    """

    def __init__(self) -> None:
        self.tile_roots: list[bytes] = []
        self.open_tile: list[bytes] = []

    def extend(self, leaves: Sequence[bytes]) -> None:
        start = 0
        while start < len(leaves):
            room = TILE - len(self.open_tile)
            self.open_tile.extend(leaves[start:start + room])
            start += room
            if len(self.open_tile) == TILE:
                self.tile_roots.append(_levels(self.open_tile)[-1][0])
                self.open_tile = []

    @property
    def size(self) -> int:
        return len(self.tile_roots) * TILE + len(self.open_tile)

    def stored_nodes(self) -> list[tuple[int, int, bytes]]:
        """(level, index, hash) of every full node at level ≥ TILE_LEVEL: what the database keeps."""
        nodes: list[tuple[int, int, bytes]] = []
        level, row = TILE_LEVEL, self.tile_roots
        while row:
            nodes.extend((level, index, value) for index, value in enumerate(row))
            row = [_sha256(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, len(row) - 1, 2)]
            level += 1
        return nodes

    def root(self) -> bytes:
        """The RFC 9162 root over every line so far (the hash of nothing for no lines)."""
        stored = {(level, index): value for level, index, value in self.stored_nodes()}
        partial = tile_nodes(self.open_tile, len(self.tile_roots) * TILE)

        def full_node(level: int, index: int) -> bytes:
            return stored[(level, index)] if level >= TILE_LEVEL else partial(level, index)

        return merkle.root(self.size, full_node)


def tile_nodes(leaves: Sequence[bytes], first: int) -> merkle.FullNode:
    """Full nodes below TILE_LEVEL within one tile whose first line is `first` (the tile may be partial)."""
    levels = _levels(leaves)

    def full_node(level: int, index: int) -> bytes:
        offset = index - (first >> level)
        if level >= len(levels) or not 0 <= offset < len(levels[level]):
            raise merkle.ProofError(f"line node ({level}, {index}) is not in this tile")
        return levels[level][offset]

    return full_node
