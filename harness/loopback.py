"""Ray on one machine stays on 127.0.0.1 because this code says so, not because the caller
exported a variable.

Ray rewrites a loopback cluster address to the machine's outward address before it dials it
(``ray._private.services.resolve_ip_for_localhost``) unless Ray clusters are switched off with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``. A driver joining a head on 127.0.0.1 then looks for its
node on eth0, where no raylet listens, and waits there until something times it out. The flag
is read once, when Ray is imported, and inherited by the processes Ray starts; so it is set in
the environment before the import, and on the loaded constant if Ray was imported already.
"""

from __future__ import annotations

import ipaddress
import os
import sys

__all__ = ["LOOPBACK_ENV", "is_loopback_address", "keep_ray_on_loopback"]

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""What a Ray process on this machine alone needs in its environment."""

_LOOPBACK_NAMES = ("localhost",)


def is_loopback_address(address: str) -> bool:
    """Whether a Ray address (``host:port``, ``ray://host:port``, ``http://host:port``) names a
    host on 127.0.0.0/8 or ::1. ``auto`` and cluster names are not loopback."""
    host = address.split("://", 1)[-1].rsplit("@", 1)[-1]
    if host.startswith("["):  # [::1]:6379
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.split("/", 1)[0]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keep_ray_on_loopback() -> None:
    """Make this process, and every Ray process it starts, keep 127.0.0.1 as its address."""
    os.environ.update(LOOPBACK_ENV)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]
