"""PYTHUSA's per-process registry: `get_reader`, `get_writer` and `get_event` by stream or event
name, filled in a task's process before its function runs (empty elsewhere)."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["get_reader", "get_writer", "get_event"]

_readers: Dict[str, Any] = {}
_writers: Dict[str, Any] = {}
_events: Dict[str, Any] = {}


def _lookup(table: Dict[str, Any], name: str, what: str, where: str) -> Any:
    """`table[name]`, or PYTHUSA's KeyError saying which list of the task to add it to."""
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"No {what} '{name}' in this process. Did you add it to the task's "
                       f"{where}?") from None


def get_reader(name: str) -> Any:
    """The raw ring (`SharedRingBuffer`) this task reads stream `name` through."""
    return _lookup(_readers, name, "reading ring", "reading_rings (or reads)").raw


def get_writer(name: str) -> Any:
    """The raw ring (`SharedRingBuffer`) this task writes stream `name` through."""
    return _lookup(_writers, name, "writing ring", "writing_rings (or writes)").raw


def get_event(name: str) -> Any:
    """The `WorkerEvent` named `name` of this task."""
    return _lookup(_events, name, "event", "events")


def install(readers: Dict[str, Any], writers: Dict[str, Any], events: Dict[str, Any]) -> None:
    """Fills the registry (a worker, once, before the task function runs)."""
    _readers.clear()
    _writers.clear()
    _events.clear()
    _readers.update(readers)
    _writers.update(writers)
    _events.update(events)
