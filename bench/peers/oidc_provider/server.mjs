// oidc-provider as it ships, for bench/run.py's peer scenarios: the default in-memory
// adapter, client_credentials and token introspection (RFC 7662) enabled, the two clients
// of bench/apps.py authenticating with client_secret_basic. Without a `resource` parameter
// a client_credentials token has no resource server, so it is opaque (the adapter stores
// it) and introspection reports it active. The provider is mounted at the root, so its
// default routes are the URLs: POST /token and POST /token/introspection.
//
//   NODE_ENV=production taskset -c 0 node server.mjs PORT   (or env BENCH_PORT)
import * as http from 'node:http';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const port = Number(process.argv[2] ?? process.env.BENCH_PORT ?? 8000);
if (!Number.isInteger(port) || port <= 0) {
  console.error(`usage: node server.mjs PORT (got ${process.argv[2]})`);
  process.exit(2);
}

// The same ids and secrets as bench/apps.py (CLIENT_* and RESOURCE_SERVER_*).
const CLIENT_ID = 'bench-client';
const RESOURCE_SERVER_ID = 'bench-resource-server';

const provider = new Provider(`http://${HOST}:${port}`, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: 'bench-client-secret-0123456789abcdef',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // A resource server: it only introspects, so it may use no grant.
      client_id: RESOURCE_SERVER_ID,
      client_secret: 'bench-resource-server-secret-0123456789',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  features: {
    // Login and consent pages for development; nothing here asks a user.
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // RFC 7662 §2.1 leaves who may introspect to the server: the resource server,
      // or the client the token was issued to (the same rule as asgi_oauth's).
      allowedPolicy: (ctx, client, token) =>
        client.clientId === RESOURCE_SERVER_ID || client.clientId === token.clientId,
    },
    // The default (enabled, no default resource): a token asked for without `resource`
    // belongs to no resource server and is therefore opaque.
    resourceIndicators: { enabled: true },
  },
  // asgi_oauth's default access token lifetime.
  ttl: { ClientCredentials: 3600 },
});

const server = http.createServer(provider.callback());
server.listen(port, HOST);

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
