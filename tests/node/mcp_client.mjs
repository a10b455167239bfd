// An MCP client built on the TypeScript SDK (@modelcontextprotocol/sdk), given nothing but
// the MCP endpoint's URL: the SDK's own OAuth flow does discovery, registration (or a client
// ID metadata document), authorization with PKCE and the token request.
//
//   node mcp_client.mjs MCP_URL REDIRECT_URI [CLIENT_METADATA_URL]
//
// It speaks to the test one JSON object per line. On stdout: {"authorize": URL} when the
// person must sign in at URL, then {"whoami", "client", "tokens", "requests"} at the end;
// on stdin: the URL the person's browser was sent back to (the redirect URI with the code).
// Any failure: {"error": message, "requests"} and exit status 1.
import { createInterface } from 'node:readline';

import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [mcpUrl, redirectUri, clientMetadataUrl] = process.argv.slice(2);
const emit = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** An OAuthClientProvider that keeps everything in memory, for one run. */
class MemoryProvider {
  clientMetadataUrl = clientMetadataUrl;
  client = undefined;
  saved = undefined;
  verifier = '';

  get redirectUrl() {
    return redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: 'TypeScript SDK test client',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(information) {
    this.client = information;
  }

  tokens() {
    return this.saved;
  }

  saveTokens(tokens) {
    this.saved = tokens;
  }

  redirectToAuthorization(authorizationUrl) {
    emit({ authorize: authorizationUrl.href });
  }

  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }

  codeVerifier() {
    return this.verifier;
  }
}

const provider = new MemoryProvider();
/** Every request the SDK made (discovery and OAuth included), and the answer's status. */
const requests = [];
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  requests.push({ method: init?.method ?? 'GET', url: String(url), status: response.status });
  return response;
}

function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    authProvider: provider,
    fetch: recordingFetch,
  });
  const client = new Client({ name: 'asgi-oauth tests', version: '1.0.0' });
  return { client, transport, connected: client.connect(transport) };
}

async function main() {
  let { client, transport, connected } = connect();
  try {
    await connected;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    // The person signed in and approved; the test hands over where the browser landed.
    const { value: landed, done } = await lines.next();
    if (done) throw new Error('no callback URL on stdin');
    const callback = new URL(landed.trim());
    if (callback.searchParams.has('error')) {
      throw new Error(`authorization refused: ${callback.search}`);
    }
    await transport.finishAuth(callback.searchParams.get('code'));
    await client.close();
    ({ client, transport, connected } = connect());
    await connected;
  }
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  if (result.isError) throw new Error(`whoami failed: ${JSON.stringify(result)}`);
  emit({ whoami: result.structuredContent, client: provider.client, tokens: provider.saved, requests });
  await client.close();
}

main().then(
  () => process.exit(0),
  (error) => {
    emit({ error: String(error?.stack ?? error), requests });
    process.exit(1);
  },
);
