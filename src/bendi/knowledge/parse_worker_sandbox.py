"""The confinement a parse worker puts itself in before it imports any parser (Linux; elsewhere only
what the OS offers): die with the server, no network, bounded memory, CPU and file sizes, no core files.

It runs first thing in a fresh interpreter: unshare() of a user namespace needs a process with one
thread, and every library imported later (numpy, onnxruntime) starts threads."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def die_with_parent() -> None:
    """A worker must never outlive a killed server (it would hold memory and the upload)."""
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def drop_network() -> str:
    """A network namespace of our own (only a loopback that is down): a parser cannot fetch a URL
    named in a document (XXE, remote images) nor reach the server's own ports. "isolated", or why not."""
    libc = _libc()
    if libc is None:
        return f"not isolated: network namespaces are Linux-only ({sys.platform})"
    # Root (CAP_SYS_ADMIN) can unshare the network alone; anyone else needs a user namespace around it.
    for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET):
        if libc.unshare(flags) == 0:
            return "isolated"
    error = ctypes.get_errno()
    return f"not isolated: unshare() refused ({os.strerror(error)}; user namespaces may be disabled)"


def limit_resources(memory_mb: int) -> None:
    import resource

    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # Temporary files (a converter's output, pdfium's caches) are bounded by the same budget.
    resource.setrlimit(resource.RLIMIT_FSIZE, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write document text to disk


def cpu_budget(seconds: float) -> None:
    """From now on this process may use `seconds` more CPU seconds, then SIGXCPU ends it.

    Only the soft limit moves (the hard one stays unlimited), so the budget can be renewed for the
    next document and at every OCR'd page: RLIMIT_CPU counts the whole life of the process."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(spent + max(1.0, seconds)) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
