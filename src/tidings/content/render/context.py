"""Everything one render reads: who it is for, the catalog, the images, the time, the caches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .caches import RenderCaches
from .ports import Catalog, Images
from .profile import RenderProfile


@dataclass(frozen=True, slots=True)
class RenderContext:
    """One render: the recipient's ``profile``, the ``catalog`` and ``images`` to read, ``now``
    (timezone-aware) and the process's ``caches``."""

    profile: RenderProfile
    catalog: Catalog
    images: Images
    now: datetime
    caches: RenderCaches
