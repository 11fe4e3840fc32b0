"""``python -m bot.ops.healthcheck``: exit 0 if the running bot's /healthz says it is healthy (container probe)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from bot.config import Settings, load_settings
from bot.errors import ConfigError

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def probe_url(settings: Settings) -> str | None:
    """Where the bot answers /healthz, or None when metrics (and so the endpoint) are off."""
    if settings.metrics_port == 0:
        return None
    host = "127.0.0.1" if settings.metrics_host in WILDCARD_HOSTS else settings.metrics_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.metrics_port}/healthz"


def probe(url: str, timeout_s: float = 5.0) -> tuple[bool, str]:
    """(healthy, what the endpoint or the connection said)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (local URL)
            return True, response.read().decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"no answer from {url}: {exc}"


def main() -> int:
    """Probe once; print one line; 0 healthy, 1 not."""
    try:
        url = probe_url(load_settings(env_file=Path(".env")))
    except ConfigError as exc:
        print(f"unhealthy: configuration error: {exc}")
        return 1
    if url is None:
        print("METRICS_PORT is 0: no health endpoint to probe")
        return 0
    healthy, detail = probe(url)
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
