"""The remote channel: a run's hub and command queue, served over ZeroMQ to any view.

``server.ChannelServer`` runs in the training process (rank 0): hub events go
out on a PUB socket in batches, snapshot and command requests come in on a
ROUTER socket. ``client.RunClient`` is the one client API every view and
script uses, in the same process or over SSH. ``auth`` signs every message
with the key from the run's connection file and checks what comes in (direction,
type, time, size, nesting) before parsing it; ``runtime`` makes the private folder
of the run's Unix sockets. Over TCP (``--listen``) ZeroMQ's CURVE encrypts the
traffic and lets in only the client keys written into the connection file.
"""

from cockpit.channel.auth import ConnectionError_, StaleConnectionError
from cockpit.channel.client import RunClient, find_runs

__all__ = ["ConnectionError_", "RunClient", "StaleConnectionError", "find_runs"]
