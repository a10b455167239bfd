"""The resource-server side: protect any ASGI application's routes with bearer tokens."""

from .bearer import BearerTokenMiddleware
from .cache import IntrospectionCache
from .decorators import require_scopes
from .errors import BearerError
from .introspectors import (
    CachingIntrospector,
    IntrospectionUnavailable,
    Introspector,
    LocalIntrospector,
    RemoteIntrospector,
)
from .jwt import JWTIntrospector, RemoteJWKS
from .revocation_stream import RevocationStream
from .users import BearerCredentials, BearerUser

__all__ = [
    "BearerCredentials",
    "BearerError",
    "BearerTokenMiddleware",
    "BearerUser",
    "CachingIntrospector",
    "IntrospectionCache",
    "IntrospectionUnavailable",
    "Introspector",
    "JWTIntrospector",
    "LocalIntrospector",
    "RemoteIntrospector",
    "RemoteJWKS",
    "RevocationStream",
    "require_scopes",
]
