"""What every handle of the package shares: the C handle it owns, closing it (by `close()`, a
`with` block, or the garbage collector), and turning a failed call into its exception."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

from . import errors
from ._common import NULL, OK, closer, wait_for
from ._ffi import ffi

H = TypeVar("H", bound="Handle")


class Handle:
    """A Python object owning one C handle (`_h`, NULL once closed).

    Subclasses describe themselves for messages (`_what()`) and add to `close()` what their
    handle needs besides the C close.
    """

    _h: Any

    def _own(self, handle: Any, close: Callable[[Any], Any]) -> None:
        """Takes ownership of `handle`, closed by `close` when this object is closed or
        collected (only in the process that opened it: `closer`)."""
        self._h = ffi.gc(handle, closer(close))

    @property
    def closed(self) -> bool:
        """Whether this handle was closed."""
        return bool(self._h == NULL)

    def close(self) -> None:
        """Closes the handle. Closing twice does nothing."""
        h, self._h = self._h, NULL
        if h != NULL:
            ffi.release(h)

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _what(self) -> str:
        """The handle in words, for messages ("the reader of stream 'samples'")."""
        raise NotImplementedError

    def _call(self, status: int) -> None:
        """Raises the exception of `status` unless it is OK (`ClosedError` on a closed
        handle, whose calls the library refuses as NULL)."""
        if status != OK:
            if self._h == NULL:
                raise errors.ClosedError(f"{self._what()} is closed")
            errors.raise_for(status)

    def _waited(self, call: Callable[[Any, int], int], timeout: Optional[float]) -> bool:
        """Whether `call(handle, ns)`, a library wait, succeeded within `timeout` seconds (None:
        waits for ever): False once the time is up, as `threading.Event.wait`."""
        h = self._h
        try:
            self._call(wait_for(lambda ns: call(h, ns), timeout, ""))
        except errors.Timeout:
            return False
        return True
