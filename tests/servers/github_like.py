"""``python -m tests.servers.github_like``: the GitHub-shaped server of the tests, alone,
to try ``examples/federation_mcp.py`` without a GitHub account.

It signs in ``octocat`` (no page: GitHub's own sign-in and consent are not the point)
for the one client it is told about::

    python -m tests.servers.github_like --port 9000 \\
        --redirect-uri http://127.0.0.1:8000/oauth2/upstream/github/callback
    EXAMPLE_GITHUB_URL=http://127.0.0.1:9000 GITHUB_CLIENT_ID=example \\
        GITHUB_CLIENT_SECRET=example-secret python -m examples.federation_mcp
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.servers.upstreams import GitHubLike


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--client-id", default="example")
    parser.add_argument("--client-secret", default="example-secret")
    parser.add_argument(
        "--redirect-uri", default="http://127.0.0.1:8000/oauth2/upstream/github/callback"
    )
    args = parser.parse_args()
    fake = GitHubLike(base_url=f"http://127.0.0.1:{args.port}")
    fake.add_client(args.client_id, args.client_secret, args.redirect_uri)
    print(f"a GitHub-shaped server at {fake.base_url}, signing in octocat", flush=True)
    uvicorn.run(fake, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
