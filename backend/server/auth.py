"""Who may talk to the backend: processes on this machine over loopback, or clients holding a CURVE key.

Without keys the backend binds only a loopback address (``tcp://127.0.0.1``, ``tcp://[::1]``,
``tcp://localhost``). Any other bind needs ``--keys FOLDER``: the socket then speaks CURVE and a ZAP
authenticator admits only clients whose public key is in ``FOLDER/clients``; everyone else is refused
during the handshake, before a single message reaches the server. The first start creates the folder
(owner-only, 0700) with the server's key pair and one client pair for the add-on (secret files 0600):

    FOLDER/server.key, server.key_secret    the backend's pair
    FOLDER/client.key, client.key_secret    give these two and server.key to the add-on (its preferences)
    FOLDER/clients/client.key               public keys of the admitted clients (add more here)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

LOOPBACK_PREFIXES = ("tcp://127.0.0.1:", "tcp://[::1]:", "tcp://localhost:")
SECRET_MODE = 0o600
FOLDER_MODE = 0o700


def is_loopback(address: str) -> bool:
    return address.startswith(LOOPBACK_PREFIXES)


def ensure_keys(folder: Path) -> None:
    """Create the key folder on first use (owner-only permissions); keep existing keys."""
    clients = folder / "clients"
    clients.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(folder, FOLDER_MODE)
    for name in ("server", "client"):
        if not (folder / f"{name}.key_secret").is_file():
            old_mask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
            try:
                zmq.auth.create_certificates(folder, name)
            finally:
                os.umask(old_mask)
        os.chmod(folder / f"{name}.key_secret", SECRET_MODE)
    if not any(clients.glob("*.key")):
        shutil.copyfile(folder / "client.key", clients / "client.key")


class CurveGuard:
    """The ZAP authenticator thread and the server's key pair for one context."""

    def __init__(self, context: zmq.Context, folder: Path):
        ensure_keys(folder)
        self.public, self.secret = zmq.auth.load_certificate(folder / "server.key_secret")
        self._authenticator = ThreadAuthenticator(context)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=str(folder / "clients"))

    def secure(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE server (call before bind)."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def stop(self) -> None:
        self._authenticator.stop()
