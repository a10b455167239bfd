"""The host application of ``tests/servers/host.py`` for the real-server tests, configured
from the environment that the test starting the server process sets
(``tests/servers/process.py``):

* ``ASGI_OAUTH_TEST_DB``: the store, a database URL or a SQLite file path;
* ``ASGI_OAUTH_TEST_ISSUER``: ``http://127.0.0.1:<port>/oauth2``;
* ``ASGI_OAUTH_TEST_SECRET_KEY`` (optional): the session key instances share;
* ``ASGI_OAUTH_TEST_CACHE_TTL`` (optional): seconds ``/api`` caches an answer;
* ``ASGI_OAUTH_TEST_KEY_ENCRYPTION_KEY`` (optional): turns OpenID Connect on;
* ``ASGI_OAUTH_TEST_SETTINGS`` (optional): more ``Settings``, as a JSON object;
* ``ASGI_OAUTH_TEST_UPSTREAM_PROVIDERS`` (optional): a providers file to sign in through.
"""

from __future__ import annotations

import json
import os

from asgi_oauth import AuthorizationServer
from asgi_oauth.federation import load_providers
from asgi_oauth.storage import open_storage
from tests.servers.host import host_app, server_settings

_cache_ttl = os.environ.get("ASGI_OAUTH_TEST_CACHE_TTL")
_upstreams = os.environ.get("ASGI_OAUTH_TEST_UPSTREAM_PROVIDERS")
server = AuthorizationServer(
    open_storage(os.environ["ASGI_OAUTH_TEST_DB"]),
    server_settings(
        os.environ["ASGI_OAUTH_TEST_ISSUER"],
        secret_key=os.environ.get("ASGI_OAUTH_TEST_SECRET_KEY"),
        key_encryption_key=os.environ.get("ASGI_OAUTH_TEST_KEY_ENCRYPTION_KEY"),
        upstream_providers=() if _upstreams is None else load_providers(_upstreams),
        **json.loads(os.environ.get("ASGI_OAUTH_TEST_SETTINGS", "{}")),
    ),
)
app = host_app(server, cache_ttl=None if _cache_ttl is None else float(_cache_ttl))
