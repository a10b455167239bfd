"""Grant types, one module each (RFC 6749 §4 and §6)."""

from .authorization_code import AuthorizationCodeGrant
from .base import Grant, GrantContext
from .client_credentials import ClientCredentialsGrant
from .device_code import DeviceCodeGrant
from .password import PasswordGrant
from .refresh_token import RefreshTokenGrant

__all__ = [
    "AuthorizationCodeGrant",
    "ClientCredentialsGrant",
    "DeviceCodeGrant",
    "Grant",
    "GrantContext",
    "PasswordGrant",
    "RefreshTokenGrant",
]
