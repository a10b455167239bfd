"""The authorization server over HTTP: a raw ASGI application."""

from .application import OAuth2App

__all__ = ["OAuth2App"]
