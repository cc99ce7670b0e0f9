"""Secrets that the embedded (single-machine) install keeps in files under `var/keys/`.

Production takes every secret from the environment (see settings); these files exist
so that `make run` works on a bare machine. They are created once, readable only by
their owner, and reused on every later start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def local_secret(var_dir: Path, name: str, *, nbytes: int = 32) -> str:
    """The hex secret stored in `var_dir/keys/name`, created on first use."""
    path = var_dir / "keys" / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Write a private temporary file, then hard-link it into place: the link fails if
    # another process got there first, so every process ends up with the same key.
    temporary = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(nbytes) + "\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()
