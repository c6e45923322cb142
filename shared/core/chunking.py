"""UTF-8-safe chunking: a Firestore document holds at most 1 MiB, an entry may hold 4 MB of text.

Chunks are cut at character boundaries so that every chunk is valid UTF-8 on its own (Firestore
rejects broken strings) and joining them in order gives the text back exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_CHUNK_BYTES = 900_000


def _is_continuation(byte: int) -> bool:
    return byte & 0b1100_0000 == 0b1000_0000


def split_text(text: str, max_bytes: int = MAX_CHUNK_BYTES, first_max_bytes: int | None = None) -> list[str]:
    """Split ``text`` into chunks of at most ``max_bytes`` UTF-8 bytes (``first_max_bytes`` for the
    first, which shares its document with the entry's structured fields). Empty text is one chunk."""
    if max_bytes < 4 or (first_max_bytes is not None and first_max_bytes < 4):
        raise ValueError("a chunk must hold at least one character (4 bytes)")
    data = text.encode("utf-8")
    chunks: list[str] = []
    start = 0
    limit = first_max_bytes if first_max_bytes is not None else max_bytes
    while True:
        end = min(start + limit, len(data))
        while end < len(data) and _is_continuation(data[end]):
            end -= 1
        chunks.append(data[start:end].decode("utf-8"))
        start = end
        limit = max_bytes
        if start >= len(data):
            return chunks


def join_chunks(chunks: Iterable[str]) -> str:
    """The inverse of :func:`split_text` (chunks in part order)."""
    return "".join(chunks)
