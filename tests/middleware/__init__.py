"""Tests of asgi_oauth.middleware, one module per source module."""
