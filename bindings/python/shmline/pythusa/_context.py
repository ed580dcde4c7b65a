"""PYTHUSA's per-process registry: `get_reader`, `get_writer` and `get_event` by stream or event
name, filled in a task's process before its function runs (empty elsewhere)."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["get_reader", "get_writer", "get_event"]

_readers: Dict[str, Any] = {}
_writers: Dict[str, Any] = {}
_events: Dict[str, Any] = {}


def get_reader(name: str) -> Any:
    """The raw ring (`SharedRingBuffer`) this task reads stream `name` through."""
    try:
        return _readers[name].raw
    except KeyError:
        raise KeyError(f"No reading ring '{name}' in this process. Did you add it to the "
                       "task's reading_rings (or reads)?") from None


def get_writer(name: str) -> Any:
    """The raw ring (`SharedRingBuffer`) this task writes stream `name` through."""
    try:
        return _writers[name].raw
    except KeyError:
        raise KeyError(f"No writing ring '{name}' in this process. Did you add it to the "
                       "task's writing_rings (or writes)?") from None


def get_event(name: str) -> Any:
    """The `WorkerEvent` named `name` of this task."""
    try:
        return _events[name]
    except KeyError:
        raise KeyError(f"No event '{name}' in this process. Did you add it to the task's "
                       "events?") from None


def install(readers: Dict[str, Any], writers: Dict[str, Any], events: Dict[str, Any]) -> None:
    """Fills the registry (a worker, once, before the task function runs)."""
    _readers.clear()
    _writers.clear()
    _events.clear()
    _readers.update(readers)
    _writers.update(writers)
    _events.update(events)
