"""HTTP deployment: bearer tokens mapped to namespaces, DNS-rebinding guard, health check.

stdio needs none of this (the host process owns the pipe); over SSE or streamable HTTP
anyone who can reach the port could otherwise read every profile, so the server refuses
to listen beyond loopback without tokens.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl

from .errors import Invalid

__all__ = [
    "NamespaceTokens",
    "auth_settings",
    "check_bind",
    "is_loopback",
    "token_namespace",
    "transport_security",
]

SCOPE = "profiles"


class NamespaceTokens(TokenVerifier):
    """Static bearer tokens, each granting access to one namespace."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(t.encode(), ns) for t, ns in tokens.items()]

    async def verify_token(self, token: str) -> AccessToken | None:
        """Constant-time match against every configured token."""
        presented = token.encode()
        found = None
        for known, ns in self._tokens:
            if hmac.compare_digest(known, presented):
                found = ns
        if found is None:
            return None
        return AccessToken(token=token, client_id=f"ns:{found}", scopes=[SCOPE], claims={"namespace": found})


def token_namespace() -> str | None:
    """The namespace of the current request's bearer token (None without one: stdio, tests)."""
    token = get_access_token()
    if token is not None and token.claims and isinstance(token.claims.get("namespace"), str):
        return str(token.claims["namespace"])
    return None


def auth_settings(
    path: str, *, auth_server: str | None = None, public_url: str | None = None
) -> AuthSettings:
    """Resource-server settings for the static bearer tokens.

    OAuth protected-resource metadata (RFC 9728) is published only when ``auth_server``
    names a real authorization server; it then names ``public_url`` + ``path`` as the
    resource. Without one, a 401 points nowhere: OAuth-capable clients would otherwise
    follow the metadata to a placeholder server and fail (a DNS error, or a resource that
    does not match the URL they called).

    Raises:
        Invalid: an authorization server without ``public_url``, or a URL that is not http(s).
    """
    if auth_server is None:
        # issuer_url is required by the SDK's model but published nowhere without a
        # resource_server_url (no metadata route, no resource_metadata in WWW-Authenticate).
        return AuthSettings(
            issuer_url=AnyHttpUrl("https://auth.invalid"), resource_server_url=None, required_scopes=[SCOPE]
        )
    if not public_url:
        raise Invalid("--auth-server needs --public-url: the URL clients use to reach this server")
    for flag, url in (("--auth-server", auth_server), ("--public-url", public_url)):
        if not url.startswith(("https://", "http://")):
            raise Invalid(f"{flag}: must be an http(s) URL, not {url!r}")
    return AuthSettings(
        issuer_url=AnyHttpUrl(auth_server),
        resource_server_url=AnyHttpUrl(public_url.rstrip("/") + path),
        required_scopes=[SCOPE],
        validate_token_resource=False,
    )


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Mapping[str, str]) -> None:
    """Raises Invalid when asked to listen beyond loopback without tokens."""
    if not is_loopback(host) and not tokens:
        raise Invalid(
            f"refusing to listen on {host} without bearer tokens: set MCP_PROFILES_TOKENS='token=namespace,…' "
            "or pass --tokens-file FILE (one 'token namespace' pair a line), or bind to 127.0.0.1"
        )


def transport_security(host: str, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """Host/Origin validation: loopback names by default, plus the names the deployment serves.

    Raises:
        Invalid: binding to a wildcard address without naming the hosts to accept.
    """
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host):
        if host in ("0.0.0.0", "::", "") and not allowed_hosts:
            raise Invalid(
                f"listening on {host or 'all interfaces'} needs --allowed-host NAME (the Host names clients "
                "use, e.g. profiles.example.com) so requests for other names are refused"
            )
        extra = allowed_hosts or [host]
        for name in extra:
            hosts += [name, f"{name}:*"] if ":" not in name else [name]
            bare = name.split(":")[0]
            origins += [f"https://{bare}", f"https://{bare}:*", f"http://{bare}", f"http://{bare}:*"]
    else:
        for name in allowed_hosts:
            hosts += [name, f"{name}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
