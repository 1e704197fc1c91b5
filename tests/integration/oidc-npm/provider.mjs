// SPDX-License-Identifier: GPL-3.0-or-later
// A real OpenID Connect provider for the end-to-end tests: oidc-provider from
// npm (see package.json), on plain http on loopback.
//
//   node provider.mjs --keys FILE [--port N] [--issuer URL]
//
// --keys FILE  private JWKS (an RS256 and an ES256 key). Read when the file
//              exists, else generated and written there, so that a test can
//              restart the provider with the same keys, another issuer with
//              the same keys, or a fresh key set (key rotation).
// --port N     port on 127.0.0.1 (default 0: any free port).
// --issuer URL issuer (default http://127.0.0.1:<port>).
//
// Prints "ready <port> <issuer>" on stdout once it accepts connections.
//
// One confidential client, CLIENT_ID / CLIENT_SECRET below, may use the
// client_credentials grant. Its access tokens are JWTs when a resource
// indicator (RFC 8707) is sent; the resource picks audience, algorithm and
// lifetime (RESOURCES below). The requested scope picks the `groups` claim
// (GROUPS below).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const CLIENT_ID = 'mqtt-test-client';
const CLIENT_SECRET = 'mqtt-test-secret';
const AUDIENCE = 'backbone'; // the broker's `client_id` setting

// resource indicator -> Resource Server (audience, JWS algorithm, lifetime).
const RESOURCES = {
  'urn:backbone:rs256': { audience: AUDIENCE, alg: 'RS256', ttl: 600 },
  'urn:backbone:es256': { audience: AUDIENCE, alg: 'ES256', ttl: 600 },
  'urn:backbone:short': { audience: AUDIENCE, alg: 'RS256', ttl: 3 },
  'urn:other-service': { audience: 'other-service', alg: 'RS256', ttl: 600 },
};

// scope -> groups claim value.
const GROUPS = {
  'mqtt:admin': 'mqtt-admins',
  'mqtt:writer': 'mqtt-writers',
  'mqtt:reader': 'mqtt-readers',
  'mqtt:staff': 'staff',
};

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string' },
    port: { type: 'string', default: '0' },
    issuer: { type: 'string' },
  },
});
if (!args.keys) {
  console.error('usage: node provider.mjs --keys FILE [--port N] [--issuer URL]');
  process.exit(2);
}

function generateKeys() {
  const label = crypto.randomBytes(4).toString('hex');
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return {
    keys: [
      { ...rsa.export({ format: 'jwk' }), kid: `rs256-${label}`, alg: 'RS256', use: 'sig' },
      { ...ec.export({ format: 'jwk' }), kid: `es256-${label}`, alg: 'ES256', use: 'sig' },
    ],
  };
}

let jwks;
if (fs.existsSync(args.keys)) {
  jwks = JSON.parse(fs.readFileSync(args.keys, 'utf8'));
} else {
  jwks = generateKeys();
  fs.writeFileSync(args.keys, JSON.stringify(jwks), { mode: 0o600 });
}

const server = http.createServer();
server.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = args.issuer || `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    jwks,
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resource) => {
          const rs = RESOURCES[resource];
          if (!rs) throw new Provider.errors.InvalidTarget();
          return {
            scope: Object.keys(GROUPS).join(' '),
            audience: rs.audience,
            accessTokenTTL: rs.ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: rs.alg } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    },
    extraTokenClaims: (ctx, token) => {
      const groups = (token.scope || '').split(' ').filter((s) => s in GROUPS)
        .map((s) => GROUPS[s]);
      return { groups, preferred_username: `${CLIENT_ID}-${groups.join('+') || 'nogroup'}` };
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`ready ${port} ${issuer}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
