"""The authorization server over HTTP: a raw ASGI application, and the pages people see."""

from .application import OAuth2App
from .browser import CurrentUser
from .pages import (
    ConsentPage,
    DeviceConsentPage,
    DevicePage,
    FormPostPage,
    LoginPage,
    LogoutPage,
    MessagePage,
    Page,
    Pages,
)

__all__ = [
    "ConsentPage",
    "CurrentUser",
    "DeviceConsentPage",
    "DevicePage",
    "FormPostPage",
    "LoginPage",
    "LogoutPage",
    "MessagePage",
    "OAuth2App",
    "Page",
    "Pages",
]
