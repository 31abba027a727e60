"""What several commands do the same way: settings from their options, a client."""

from __future__ import annotations

from typing import Any


def settings(
    api_key: str | None, base_url: str | None, email: str | None, profile: str | None
) -> Any:
    from ...config import Settings

    return Settings.from_options(
        {"api_key": api_key, "base_url": base_url, "email": email}, profile
    )


def client(settings: Any, timeout: float, insecure_http: bool) -> Any:
    from ...api import SyncOrgaClient

    return SyncOrgaClient(
        settings.value("base_url"),
        settings.value("api_key"),
        timeout=timeout,
        insecure_http=insecure_http,
    )
