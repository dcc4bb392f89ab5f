"""Claim and lease bookkeeping: who owns a claim (a host identity, a pid, an extractor id),
whether that owner still runs, and the signal that a claim no longer holds."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket

__all__ = ["host_identity"]


class _Discarded(Exception):
    """The claim no longer holds (the items were deleted, or claimed by another worker):
    the result is thrown away and nothing is written."""


_OWNERS: set[str] = set()  # the owner ids of the extractors alive in this process


def host_identity(configured: str = "") -> str:
    """Who "this host" is in a claim's owner. A claim's pid is checked only by a process of
    the same identity, because a pid means something only in its own pid namespace on its
    own machine: by default the host name with the kernel's boot id and this process's pid
    namespace, so that two containers (where every replica is pid 1) or two machines of the
    same name are never taken for one. ``MCP_PROFILES_HOST_ID`` replaces it."""
    if configured:
        return configured
    name = socket.gethostname().replace(":", "-") or "host"
    marks = []
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            marks.append(f.read().strip())
    with contextlib.suppress(OSError):
        marks.append(os.readlink("/proc/self/ns/pid"))
    if not marks:  # no /proc: the host name alone (set MCP_PROFILES_HOST_ID where it is not unique)
        return name
    return f"{name}/{hashlib.sha256('|'.join(marks).encode()).hexdigest()[:8]}"


def _alive(owner: str | None, host: str) -> bool:
    """Whether a claim's owner (not this extractor) still runs. Only knowable for an owner of
    this host identity: of another host, a pid means nothing here, and only its lease frees
    the claim."""
    if not owner:
        return False
    their_host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if their_host != host or not pid.isdigit():
        return True
    if int(pid) == os.getpid():  # our pid: another extractor of this process, or a restart reusing it
        return ":".join(owner.split(":")[:3]) in _OWNERS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
