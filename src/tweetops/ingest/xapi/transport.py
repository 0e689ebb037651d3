"""Pointing tweepy at another base URL, and giving its requests a timeout.

`ingest.api_base_url` lets a proxy or a test server stand in for https://api.twitter.com: a
`requests` transport adapter mounted on the tweepy client's session rewrites the URL prefix.
tweepy itself is not patched.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

DEFAULT_API_BASE_URL = "https://api.twitter.com"
# requests sent by tweepy's Client carry no timeout; a silently dead connection must still fail
REQUEST_TIMEOUT = (10.0, 60.0)


class NotJsonAnswer(requests.RequestException):
    """A 200 answer whose body is not JSON (an HTML page from a proxy or a captive portal)."""

    def __init__(self, content_type: str) -> None:
        super().__init__(f"200 with a {content_type or 'untyped'} body, not JSON")
        self.content_type = content_type or "untyped"


class ApiAdapter(HTTPAdapter):
    """Transport adapter that sends `https://api.twitter.com/...` requests to `base_url`.

    It also gives requests without a timeout (tweepy's Client sets none) `REQUEST_TIMEOUT`.
    """

    def __init__(
        self, base_url: str | None = None, timeout: tuple[float, float] | None = REQUEST_TIMEOUT
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Rewrite the URL prefix, then send as usual."""
        url = request.url or ""
        if self.base_url and url.startswith(DEFAULT_API_BASE_URL):
            request.url = self.base_url + url[len(DEFAULT_API_BASE_URL) :]
            if requests.utils.should_bypass_proxies(request.url, no_proxy=None):
                proxies = {}
        if timeout is None and self.timeout is not None:
            timeout = self.timeout
        response = super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        # retrying does not turn a web page into JSON: refused at once (a body cut short keeps
        # its JSON content type and is retried); the filtered stream reads its own lines
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if response.status_code == 200 and "json" not in content_type and not stream:
            response.close()
            raise NotJsonAnswer(content_type)
        return response


def mount_api_adapter(
    session: requests.Session,
    api_base_url: str,
    timeout: tuple[float, float] | None = REQUEST_TIMEOUT,
) -> None:
    """Mount an :class:`ApiAdapter` for `api_base_url` on a tweepy client's `session`."""
    session.mount(DEFAULT_API_BASE_URL, ApiAdapter(_rewrites_base(api_base_url), timeout))


def _rewrites_base(base_url: str) -> str | None:
    base = base_url.strip().rstrip("/")
    return None if base in ("", DEFAULT_API_BASE_URL) else base
