"""Download a `file_url` without letting a client steer the gateway at private addresses.

Every hop goes through `url_guard.pin_url` (scheme, port, host lists, one DNS lookup, every
address checked), then connects to exactly the checked address: the URL's host is swapped for
the IP, the `Host` header keeps the name and TLS uses the name for SNI and certificate checks
(httpcore's `sni_hostname` extension). Redirects are followed by hand so each hop is re-checked.
The body is streamed raw (no gzip expansion) and dropped the moment it passes the byte cap.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import httpx

from voxtral_gateway.errors import AudioLimitError, FetchError, UrlRejectedError
from voxtral_gateway.pipeline.url_guard import PinnedTarget, Resolver, SystemResolver, pin_url
from voxtral_gateway.settings import FetchSettings, LimitSettings

logger = logging.getLogger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "voxtral-gateway-fetcher/1"


async def fetch_audio(
    url: str,
    settings: FetchSettings,
    limits: LimitSettings,
    *,
    resolver: Resolver | None = None,
) -> bytes:
    """Fetch `url` and return its body, at most `limits.max_upload_bytes` long.

    Raises UrlRejectedError (policy, before connecting), FetchError (unreachable, timeout,
    bad status, too many redirects) or AudioLimitError (body larger than the cap).
    """
    if not settings.enabled:
        raise UrlRejectedError(
            "Fetching audio by URL is disabled on this server.", param="file_url"
        )
    resolver = resolver or SystemResolver()
    try:
        async with asyncio.timeout(settings.total_timeout_s):
            return await _follow(url, settings, limits, resolver)
    except TimeoutError as exc:
        raise FetchError(
            f"Fetching the URL took longer than {settings.total_timeout_s:g} s.", param="file_url"
        ) from exc


async def _follow(
    url: str, settings: FetchSettings, limits: LimitSettings, resolver: Resolver
) -> bytes:
    async with _client(settings) as client:
        current: str | httpx.URL = url
        for _hop in range(settings.max_redirects + 1):
            target = await pin_url(current, settings, resolver)
            try:
                response = await _open(client, target)
                try:
                    if response.status_code in _REDIRECT_STATUSES:
                        current = _redirect_target(target, response)
                        continue
                    if not 200 <= response.status_code < 300:
                        raise FetchError(
                            f"The URL answered HTTP {response.status_code}.", param="file_url"
                        )
                    return await _read_capped(response, limits.max_upload_bytes)
                finally:
                    await response.aclose()
            except httpx.TimeoutException as exc:
                raise FetchError("Fetching the URL timed out.", param="file_url") from exc
            except httpx.HTTPError as exc:
                logger.info("fetch of %s failed: %s", target.host, type(exc).__name__)
                raise FetchError(
                    f"The URL could not be fetched ({type(exc).__name__}).", param="file_url"
                ) from exc
    raise FetchError(f"More than {settings.max_redirects} redirects.", param="file_url")


async def _open(client: httpx.AsyncClient, target: PinnedTarget) -> httpx.Response:
    """Open a streamed response on the first checked address that accepts a connection.

    A dual-stack name whose IPv6 address is unreachable from here still works over IPv4;
    every candidate was checked by the guard, and nothing outside them is ever tried.
    """
    last_error: httpx.HTTPError | None = None
    for address in target.addresses:
        request = client.build_request(
            "GET",
            target.connect_url(address),
            headers=_headers(target),
            extensions=_extensions(target),
        )
        try:
            response = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            last_error = exc
            continue
        return response
    assert last_error is not None
    raise last_error


def _client(settings: FetchSettings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.read_timeout_s,
        pool=settings.connect_timeout_s,
    )
    verify: ssl.SSLContext | bool = True
    if settings.ca_bundle_path is not None:
        verify = ssl.create_default_context(cafile=settings.ca_bundle_path)
    # trust_env=False: a proxy from the environment would resolve the name itself and undo
    # the pinning. A fresh client per fetch: pooled connections are keyed by IP, not by SNI name.
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        verify=verify,
        timeout=timeout,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
    )


def _headers(target: PinnedTarget) -> dict[str, str]:
    netloc = target.url.netloc.decode("ascii")
    return {
        "Host": netloc,
        "User-Agent": _USER_AGENT,
        # Compressed bodies would expand past the byte cap inside one chunk.
        "Accept-Encoding": "identity",
        "Accept": "audio/*, video/*, application/octet-stream;q=0.9, */*;q=0.5",
    }


def _extensions(target: PinnedTarget) -> dict[str, str]:
    if target.url.scheme == "https" and not target.is_ip_literal:
        # Connect to the IP, but present and verify the certificate for the name.
        return {"sni_hostname": target.host.rstrip(".")}
    return {}


def _redirect_target(target: PinnedTarget, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError("The URL redirected without a Location header.", param="file_url")
    if "\\" in location or any(ch.isspace() for ch in location):
        raise UrlRejectedError("A redirect pointed at a malformed URL.", param="file_url")
    try:
        # Joined against the URL as written (name, not IP) so relative redirects keep the name.
        return target.url.join(location)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise UrlRejectedError("A redirect pointed at a malformed URL.", param="file_url") from exc


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchError(
            f"The URL answered with Content-Encoding {encoding!r}; only identity is accepted.",
            param="file_url",
        )
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in response.aiter_raw():
        if len(body) + len(chunk) > max_bytes:
            raise _too_large(max_bytes)
        body += chunk
    return bytes(body)


def _too_large(max_bytes: int) -> AudioLimitError:
    return AudioLimitError(
        f"The file at the URL is larger than {max_bytes} bytes.", param="file_url"
    )
