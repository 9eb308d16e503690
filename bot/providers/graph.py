"""A small JSON client for Microsoft Graph and Azure Resource Manager, on aiohttp.

Both speak the same dialect: a bearer token for the API's scope, JSON bodies, errors as
`{"error": {"code", "message"}}`, 429/503 with Retry-After when throttled, and pages joined by
a next link (`@odata.nextLink` in Graph, `nextLink` in ARM). Failures come out as
`ApiError`, a `ProviderError` already marked retryable or permanent, carrying the service's
error code so a provider can recognise the answers that mean "already done".
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError

from bot.providers.credentials import Clouds, azure_credential, scope_for, tls_context
from handlers.grants.provider import ProviderError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
# Statuses a later attempt may well get past; 429 and 503 also carry Retry-After.
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_PAGES = 1000  # a runaway next link must not loop forever


class ApiError(ProviderError):
    """A Graph or ARM answer other than success; `code` is the service's error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent, retry_after=retry_after)
        self.status, self.code = status, code


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _first_line(err: Exception) -> str:
    text = (getattr(err, "message", None) or str(err)).strip()
    return (text.splitlines() or ["no details"])[0][:300]


def _error_of(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "")
    return "", ""


Connect = Callable[[], tuple[aiohttp.ClientSession, AsyncTokenCredential]]


class GraphClient:
    """One API (Graph or ARM) at `base_url`, with tokens for its scope. `connect` gives the
    session and credential, opened on first use (aiohttp sessions need a running loop)."""

    def __init__(
        self,
        *,
        connect: Connect,
        base_url: str,
        name: str = "Microsoft Graph",
        timeout: float = DEFAULT_TIMEOUT,
        disconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.connect, self.name, self._disconnect = connect, name, disconnect
        self.base_url = base_url.rstrip("/")
        self.scope = scope_for(base_url)
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def close(self) -> None:
        if self._disconnect is not None:
            await self._disconnect()

    async def check(self) -> None:
        """Sign in once: raises ApiError (permanent for a refused credential) if it fails."""
        await self._token()

    def url(self, path: str) -> str:
        """A path on this API, or a next link, which must stay on this API's origin: the
        bearer token goes with it."""
        if "://" not in path:
            return self.base_url + path
        if urlsplit(path).netloc != urlsplit(self.base_url).netloc or not path.startswith(
            "https://"
        ):
            raise ApiError(
                f"{self.name} sent a link to another host; not following it", permanent=True
            )
        return path

    async def _token(self) -> str:
        try:
            token = await self.connect()[1].get_token(self.scope)
        except ClientAuthenticationError as err:
            # A refused secret or certificate, or no credential configured at all, needs an
            # admin, not another attempt; a login endpoint that answers 5xx is worth retrying.
            status = getattr(err.response, "status_code", None)
            permanent = status is None or status < 500
            raise ApiError(
                f"could not sign in to {self.name}: {_first_line(err)}",
                status=status,
                permanent=permanent,
            ) from None
        except AzureError as err:  # the login endpoint could not be reached
            raise ApiError(f"could not sign in to {self.name}: {_first_line(err)}") from None
        return token.token

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Send one request; the JSON answer (an empty dict for an empty body)."""
        headers = {"Authorization": f"Bearer {await self._token()}", "Accept": "application/json"}
        url = self.url(path)
        try:
            session = self.connect()[0]
            async with session.request(
                method, url, json=json, params=params, headers=headers, timeout=self.timeout
            ) as resp:
                text = await resp.text()
                status, hint = resp.status, resp.headers.get("Retry-After")
        except TimeoutError:
            raise ApiError(f"{self.name} did not answer within {self.timeout.total:g}s") from None
        except aiohttp.ClientError as err:
            raise ApiError(f"{self.name} could not be reached: {err}") from None
        body: Any = None
        if text:
            try:
                body = jsonlib.loads(text)
            except ValueError:
                body = None
        if 200 <= status < 300:
            return body if isinstance(body, dict) else {}
        raise self._failure(method, status, body, hint)

    def _failure(self, method: str, status: int, body: Any, hint: str | None) -> ApiError:
        code, message = _error_of(body)
        wait = retry_after(hint) if status in (429, 503) else None
        detail = f"{code}: {message}" if code else (message or "no details")
        logger.info("%s %s answered %s %s", self.name, method, status, code or "")
        return ApiError(
            f"{self.name} answered {status} ({detail[:300]})",
            status=status,
            code=code,
            permanent=status not in RETRYABLE,
            retry_after=wait,
        )

    async def items(
        self, path: str, *, params: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a collection (`value`), following next links page by page."""
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page = await self.request("GET", url, params=params)
            params = None  # the next link carries the query on
            for item in page.get("value") or []:
                if isinstance(item, dict):
                    yield item
            url = page.get("@odata.nextLink") or page.get("nextLink")
        raise ApiError(f"{self.name} kept paging past {MAX_PAGES} pages", permanent=True)


class MicrosoftApis:
    """One aiohttp session and one credential, shared by the Graph and ARM clients.

    The credential's token requests go through the same session (and TLS trust) as the API
    calls. Both open on first use, inside the running loop, so this can be built anywhere.
    `async with MicrosoftApis.from_env() as apis: apis.graph, apis.arm`.
    """

    def __init__(self, *, clouds: Clouds, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.clouds = clouds
        self._session: aiohttp.ClientSession | None = None
        self._credential: AsyncTokenCredential | None = None
        self.graph = GraphClient(
            connect=self.connection, base_url=clouds.graph, timeout=timeout, disconnect=self.close
        )
        self.arm = GraphClient(
            connect=self.connection,
            base_url=clouds.arm,
            name="Azure Resource Manager",
            timeout=timeout,
            disconnect=self.close,
        )

    @classmethod
    def from_env(cls, *, timeout: float = DEFAULT_TIMEOUT) -> MicrosoftApis:
        return cls(clouds=Clouds.from_env(), timeout=timeout)

    def connection(self) -> tuple[aiohttp.ClientSession, AsyncTokenCredential]:
        if self._session is None or self._credential is None:
            from azure.core.pipeline.transport import AioHttpTransport

            connector = aiohttp.TCPConnector(ssl=tls_context(), limit=64)
            self._session = aiohttp.ClientSession(connector=connector)
            self._credential = azure_credential(
                transport=AioHttpTransport(session=self._session, session_owner=False)
            )
        return self._session, self._credential

    async def close(self) -> None:
        """Close the credential and the session; safe to call more than once."""
        session, credential = self._session, self._credential
        self._session = self._credential = None
        if credential is not None:
            await credential.close()
        if session is not None:
            await session.close()
            await asyncio.sleep(0)  # let aiohttp close its transports before the loop moves on

    async def __aenter__(self) -> MicrosoftApis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
