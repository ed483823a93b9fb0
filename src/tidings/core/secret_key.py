"""The app's secret key: ``TIDINGS_SECRET_KEY``, or one generated once into ``data_dir``.

It signs what tidings hands to browsers and must be able to check later (the admin UI's session
cookies; signed links). Every process sharing a ``data_dir`` reads the same generated key, so
``tidings serve --workers N`` and a restart keep sessions valid.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tidings.core.settings import Settings

KEY_FILE = "secret_key"
MIN_KEY_CHARS = 32


def load_secret_key(settings: Settings) -> bytes:
    """The configured key, else the one in ``data_dir/secret_key`` (made, mode 0600, if absent).

    Creation is atomic (written to a temporary file, then hard-linked into place), so processes
    starting together agree on one key.
    """
    configured = settings.secret_key.get_secret_value()
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise ValueError(f"TIDINGS_SECRET_KEY must be at least {MIN_KEY_CHARS} characters")
        return configured.encode("utf-8")
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(f"{path} holds no usable secret key; delete it to make a new one")
    return key.encode("utf-8")
