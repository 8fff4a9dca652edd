"""Error types of the client library."""

from __future__ import annotations


class VarError(Exception):
    """A failure tied to one variable, reported to the gateway as an ``error`` message.

    ``code`` is one of the protocol's error codes (``path-failure``, ``not-found``,
    ``access-denied``, ...); app code raises it from a method to choose the code the browser sees.
    """

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VarError) and (self.code, self.description) == (other.code, other.description)

    def __hash__(self) -> int:
        return hash((self.code, self.description))


def path_failure(description: str) -> VarError:
    return VarError("path-failure", description)


class ClientError(Exception):
    """The client stopped for a reason it does not retry."""


class Refused(ClientError):
    """The gateway refused the backend connection (HTTP 401/403): a wrong or missing token."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the gateway refused the backend connection (HTTP {status})")
        self.status = status


class ProtocolMismatch(ClientError):
    """The gateway speaks a backend protocol version this library does not know."""


class SessionClosed(Exception):
    """The session a handle points to is gone (closed by the gateway, or the client stopped)."""
