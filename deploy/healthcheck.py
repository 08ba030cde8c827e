"""Container health check of AIWS: exit 0 when ``GET /health`` answers 200, else 1 (one line on stderr).

The images have no curl; Docker runs this in exec form (``HEALTHCHECK CMD ["python", ...]``).
``/health`` answers 200 when the service runs, also when it reports ``degraded`` (a full disk, a
dead-lettered destination, an unreachable Triton): those are for the administrator to look at, and
restarting the container would not mend them. The URL is ``AIWS_HEALTH_URL`` when set, else
``http://127.0.0.1:${AIWS_HTTP_PORT:-8080}/health``.
"""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def health_url(env: dict[str, str]) -> str:
    """The URL to probe, from the environment."""
    return env.get("AIWS_HEALTH_URL") or f"http://127.0.0.1:{env.get('AIWS_HTTP_PORT', '8080')}/health"


def main() -> int:
    url = health_url(dict(os.environ))
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"healthcheck: {url}: {type(exc).__name__}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"healthcheck: {url}: HTTP {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
