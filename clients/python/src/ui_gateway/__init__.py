"""ui-gateway's Python backend client: a plain Python object is the UI.

    from ui_gateway import Client

    class Counter:
        def __init__(self):
            self.count = 0
        def increment(self):
            self.count += 1

    Client.from_env().connected(lambda session: Counter()).run()
"""

from .config import DEFAULT_URL, ClientConfig, backoff_delay
from .connection import Backend, Client, RunningClient
from .errors import ClientError, ProtocolMismatch, Refused, SessionClosed, VarError
from .handle import SessionHandle
from .session import Session
from .wrappers import ViewList, ViewListItem

__all__ = [
    "Backend", "Client", "ClientConfig", "ClientError", "DEFAULT_URL", "ProtocolMismatch", "Refused",
    "RunningClient", "Session", "SessionClosed", "SessionHandle", "VarError", "ViewList", "ViewListItem",
    "backoff_delay",
]
__version__ = "0.1.0"
