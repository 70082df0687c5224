"""How alvit words what it counts in the lines it prints."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 configuration``, ``3 configurations``, ``0 configurations`` (nouns that take an s)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


__all__ = ["plural"]
