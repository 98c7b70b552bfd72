"""The Django app (``INSTALLED_APPS += ["cohrt_sync.django"]``): its checks and settings hook."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["CohrtConfig"]


class CohrtConfig(AppConfig):
    """The ``cohrt_sync.django`` app (label ``cohrt_sync``): no models, no migrations."""

    name = "cohrt_sync.django"
    label = "cohrt_sync"
    verbose_name = "cohrt-sync realtime"

    def ready(self) -> None:
        """Register the system checks; rebuild the state when a ``COHRT_*`` setting changes."""
        from django.test.signals import setting_changed

        from . import checks  # noqa: F401  (registers the checks)
        from .conf import setting_changed_receiver

        setting_changed.connect(setting_changed_receiver, dispatch_uid="cohrt_sync.settings")
