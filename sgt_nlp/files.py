"""Writing result files so that a crash, a full disk or a bad value never leaves a half-written or empty file,
and claiming an output folder so that two runs never write (or clear) the same one.

Every result file goes through :func:`atomic_write_text` / :func:`atomic_write_bytes`: the content is written
to a temporary file beside the target, flushed to disk and moved over the target with :func:`os.replace`, so a
reader sees the old file or the new one, never a truncated one. Imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from pathlib import Path

#: a name that becomes one file or folder name: no separator, not starting with a dot (so never ``..``)
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")

#: the file a command leaves in an output folder it claimed (hidden, so listings stay as they were)
CLAIM_FILE = ".sgt_nlp_claim"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` for text."""
    return atomic_write_bytes(path, text.encode(encoding))


def write_claim(folder: str | Path, command: str, *, replace: bool) -> str:
    """Claim ``folder`` for one run of ``command``; returns the claim's token.

    The claim file is created exclusively (``O_EXCL``), so of two runs started on one empty folder only the
    first gets it; the second raises :class:`FileExistsError`. ``replace`` (``--overwrite_output_dir``) takes
    over a folder another run claimed earlier. Check the token with :func:`holds_claim` before writing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    body = json.dumps({"command": command, "pid": os.getpid(), "token": token}) + "\n"
    path = folder / CLAIM_FILE
    if replace:
        atomic_write_text(path, body)
        return token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
    return token


def claim_token(folder: str | Path) -> str | None:
    """The token of the claim on ``folder`` (None when unclaimed or unreadable)."""
    try:
        record = json.loads((Path(folder) / CLAIM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("token") if isinstance(record, dict) else None


def is_stale_claim_only(folder: str | Path) -> bool:
    """True when ``folder`` holds nothing but a claim whose process has ended (a run stopped before it wrote
    anything): it may be claimed again without ``--overwrite_output_dir``."""
    folder = Path(folder)
    if not folder.is_dir() or [p.name for p in folder.iterdir()] != [CLAIM_FILE]:
        return False
    try:
        record = json.loads((folder / CLAIM_FILE).read_text(encoding="utf-8"))
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by another user
        return False
    return False


def holds_claim(folder: str | Path, token: str | None) -> bool:
    """True when ``token`` is None (an unclaimed write, e.g. the Python API) or still holds ``folder``."""
    return token is None or claim_token(folder) == token


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path``, with every symlink resolved, lies inside ``folder`` (or is it)."""
    resolved, root = Path(path).resolve(), Path(folder).resolve()
    return resolved == root or root in resolved.parents
