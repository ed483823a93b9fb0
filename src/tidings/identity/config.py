"""Identity rules from settings."""

from __future__ import annotations

from tidings.core.settings import Settings

from .graph import ExternalIdField, IdentityRules


def rules_from_settings(settings: Settings) -> IdentityRules:
    """``TIDINGS_IDENTITY_*`` as rules; an external id type ``phone`` is read from the traits
    key ``phone`` and from ``context.externalIds`` entries of type ``phone``."""
    external = tuple(
        ExternalIdField(type=name, traits=(name,), external_ids=(name,))
        for name in settings.identity_external_ids
    )
    priority = tuple(settings.identity_priority) if settings.identity_priority else None
    return IdentityRules(
        limits=dict(settings.identity_limits),
        priority=priority,
        blocked=frozenset(settings.identity_blocked_values),
        external=external,
    )
