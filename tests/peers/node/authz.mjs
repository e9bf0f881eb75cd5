// A real OAuth 2 authorization server for Sluice's auth tests: oidc-provider (panva) on
// 127.0.0.1, with its own token endpoint, client registry and client authentication
// (client_secret_basic and client_secret_post). The three grants are handlers registered
// through oidc-provider's extension point, provider.registerGrantType():
//   client_credentials                                access token for the client itself
//   urn:ietf:params:oauth:grant-type:token-exchange   RFC 8693; requested_token_type
//       urn:ietf:params:oauth:token-type:access_token (default) or
//       urn:ietf:params:oauth:token-type:id-jag (an Identity Assertion JWT Authorization Grant,
//       typ oauth-id-jag+jwt, aud = the `audience` parameter, which is then required)
//   urn:ietf:params:oauth:grant-type:jwt-bearer       RFC 7523 with an ID-JAG as `assertion`
//       (typ oauth-id-jag+jwt, aud = this issuer, client_id claim = the authenticated client)
// Every issued token is a JWT signed RS256 with the key published at /jwks. Subject tokens and
// assertions must verify against this server's own keys or those of a `trust`ed issuer, and
// must not be expired; otherwise invalid_grant. Errors are RFC 6749 §5.2 JSON with
// oidc-provider's statuses. Metadata: /.well-known/openid-configuration and
// /.well-known/oauth-authorization-server (same document).
//
// It prints one JSON line when listening:
//   {"issuer":"http://127.0.0.1:PORT","token_endpoint":"…/token","jwks_uri":"…/jwks"}
// then answers one JSON command per stdin line with one JSON line on stdout ({"error": …}
// on failure):
//   {"op":"client","client_id":"a","client_secret":"s"}   registers a confidential client
//       (basic or post, all three grants) → {"client_id":"a"}
//   {"op":"trust","issuer":"http://127.0.0.1:P","jwks_uri":"http://127.0.0.1:P/jwks"}
//       accept JWTs signed by that issuer's keys (fetched when needed) → {"trusted": issuer}
//   {"op":"ttl","seconds":N}      lifetime (expires_in and exp) of tokens issued from now on;
//                                 default 3600 → {"ttl": N}
//   {"op":"delay","ms":N}         every token endpoint response waits N ms (0: none)
//   {"op":"down"} / {"op":"up"}   the token endpoint answers 503 (text body) / normally
//   {"op":"count"}  {"client_credentials":n,"token_exchange":n,"jwt_bearer":n,"refused":n}
//                   successful token requests per grant; refused = any 4xx/5xx at /token
//   {"op":"last"}   the form fields of the last token request (client_secret, client_assertion,
//                   subject_token, actor_token and assertion values replaced by "***") plus
//                   "client_auth": "basic"|"post"|"none" and "client_id" of the authenticated
//                   client (null, with "none", when authentication failed or never happened);
//                   {} before any token request
// Logs only to stderr. It exits when stdin closes.
import crypto from 'node:crypto';
import http from 'node:http';
import { URLSearchParams } from 'node:url';
import Provider, { errors } from 'oidc-provider';
import { serveCommands } from './commands.mjs';
import {
  SignJWT, createLocalJWKSet, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair,
  jwtVerify,
} from 'jose';

// oidc-provider prints notices with console.info; stdout carries only the JSON answers.
console.log = console.error;
console.info = console.error;

const { InvalidGrant, InvalidRequest } = errors;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TT = 'urn:ietf:params:oauth:token-type:';
const ACCESS_TOKEN = `${TT}access_token`;
const ID_JAG = `${TT}id-jag`;
const SUBJECT_TYPES = new Set([ACCESS_TOKEN, `${TT}id_token`, `${TT}jwt`]);
const ID_JAG_TYP = 'oauth-id-jag+jwt';
const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const MASKED = new Set(['client_secret', 'client_assertion', 'subject_token', 'actor_token', 'assertion']);
const GRANT_COUNTER = {
  client_credentials: 'client_credentials',
  [TOKEN_EXCHANGE]: 'token_exchange',
  [JWT_BEARER]: 'jwt_bearer',
};

let ttl = 3600;
let delayMs = 0;
let down = false;
let last = {};
const counts = { client_credentials: 0, token_exchange: 0, jwt_bearer: 0, refused: 0 };
const trusted = new Map(); // issuer → JWKS key lookup function

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const kid = 'authz-rs256';
const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
const ownKeys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] });

let callback; // set once the provider is configured
const server = http.createServer((req, res) => {
  if (!callback) {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('starting');
    return;
  }
  callback(req, res);
});
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [privateJwk] },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  responseTypes: ['none'],
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: { enabled: false },
    userinfo: { enabled: false },
  },
});

async function sign(claims, typ = 'at+jwt') {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: issuer, iat: now, exp: now + ttl, jti: crypto.randomUUID() };
  for (const [k, v] of Object.entries(claims)) if (v !== undefined) payload[k] = v;
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid, typ }).sign(privateKey);
}

// oidc-provider's InvalidGrant has a fixed error_description; these tests want the reason.
function grantError(description) {
  const err = new InvalidGrant(description);
  err.error_description = description;
  return err;
}

// Verifies a JWT against this server's keys or a trusted issuer's; any failure is invalid_grant.
async function verifyTrusted(token, what, options = {}) {
  let iss;
  try {
    ({ iss } = decodeJwt(token));
  } catch (e) {
    throw grantError(`${what} is not a JWT (${e.message})`);
  }
  const keys = iss === issuer ? ownKeys : trusted.get(iss);
  if (!keys) throw grantError(`${what} issuer ${iss} is not trusted`);
  try {
    return (await jwtVerify(token, keys, { issuer: iss, algorithms: ALGS, ...options })).payload;
  } catch (e) {
    throw grantError(`${what} is invalid: ${e.message}`);
  }
}

const scopeOf = (params) => params.scope || undefined;

provider.registerGrantType('client_credentials', async (ctx) => {
  const { params, client } = ctx.oidc;
  const scope = scopeOf(params);
  const accessToken = await sign({
    sub: client.clientId,
    client_id: client.clientId,
    aud: params.resource || params.audience || undefined,
    scope,
  });
  ctx.body = { access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope };
}, ['scope', 'resource', 'audience']);

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (!params.subject_token) throw new InvalidRequest('missing required parameter \'subject_token\'');
  if (!params.subject_token_type) throw new InvalidRequest('missing required parameter \'subject_token_type\'');
  if (!SUBJECT_TYPES.has(params.subject_token_type)) {
    throw new InvalidRequest(`unsupported subject_token_type ${params.subject_token_type}`);
  }
  const requested = params.requested_token_type || ACCESS_TOKEN;
  if (requested !== ACCESS_TOKEN && requested !== ID_JAG) {
    throw new InvalidRequest(`unsupported requested_token_type ${requested}`);
  }
  if (requested === ID_JAG && !params.audience) {
    throw new InvalidRequest('audience (the resource authorization server\'s issuer) is required for an ID-JAG');
  }
  const subject = await verifyTrusted(params.subject_token, 'subject_token');
  const scope = scopeOf(params);
  if (requested === ID_JAG) {
    const jag = await sign({
      sub: subject.sub,
      aud: params.audience,
      client_id: client.clientId,
      resource: params.resource || undefined,
      scope,
    }, ID_JAG_TYP);
    ctx.body = {
      access_token: jag, issued_token_type: ID_JAG, token_type: 'N_A', expires_in: ttl, scope,
    };
    return;
  }
  const accessToken = await sign({
    sub: subject.sub,
    aud: params.resource || params.audience || undefined,
    scope,
    client_id: client.clientId,
    act: { sub: client.clientId },
  });
  ctx.body = {
    access_token: accessToken, issued_token_type: ACCESS_TOKEN, token_type: 'Bearer', expires_in: ttl, scope,
  };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope',
  'actor_token', 'actor_token_type']);

provider.registerGrantType(JWT_BEARER, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (!params.assertion) throw new InvalidRequest('missing required parameter \'assertion\'');
  const jag = await verifyTrusted(params.assertion, 'assertion', { typ: ID_JAG_TYP, audience: issuer });
  if (jag.client_id !== client.clientId) {
    throw grantError(`assertion client_id ${jag.client_id} is not the authenticated client ${client.clientId}`);
  }
  const scope = jag.scope || undefined;
  const accessToken = await sign({
    sub: jag.sub, aud: jag.resource, scope, client_id: client.clientId,
  });
  ctx.body = { access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope };
}, ['assertion', 'scope']);

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
}

// Outermost middleware: the oauth-authorization-server alias, down/delay, counts and `last`.
provider.use(async (ctx, next) => {
  if (ctx.path === '/.well-known/oauth-authorization-server') ctx.path = '/.well-known/openid-configuration';
  if (ctx.path !== '/token' || ctx.method !== 'POST') {
    await next();
    return;
  }
  let form;
  if (down) {
    form = await readForm(ctx.req).catch(() => ({}));
    ctx.status = 503;
    ctx.type = 'text/plain';
    ctx.body = 'token endpoint is down';
  } else {
    await next();
    form = ctx.oidc?.body ?? {};
  }
  const client = ctx.oidc?.client;
  const authenticated = client && ctx.status !== 401 && ctx.body?.error !== 'invalid_client';
  let clientAuth = 'none';
  if (authenticated) {
    if (ctx.headers.authorization?.toLowerCase().startsWith('basic ')) clientAuth = 'basic';
    else if (form.client_secret) clientAuth = 'post';
  }
  last = {};
  for (const [k, v] of Object.entries(form)) last[k] = MASKED.has(k) ? '***' : v;
  last.client_auth = clientAuth;
  last.client_id = authenticated ? client.clientId : null;
  if (ctx.status >= 400) counts.refused += 1;
  else if (GRANT_COUNTER[form.grant_type]) counts[GRANT_COUNTER[form.grant_type]] += 1;
  if (delayMs > 0) await sleep(delayMs);
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
callback = provider.callback();

async function handle(cmd) {
  switch (cmd.op) {
    case 'client': {
      if (!cmd.client_id || !cmd.client_secret) throw new Error('client_id and client_secret are required');
      const metadata = {
        client_id: cmd.client_id,
        client_secret: cmd.client_secret,
        token_endpoint_auth_method: 'client_secret_basic', // oidc-provider then accepts post too
        grant_types: ['client_credentials', TOKEN_EXCHANGE, JWT_BEARER],
        response_types: [],
        redirect_uris: [],
      };
      await provider.Client.validate(metadata);
      await provider.Client.adapter.upsert(cmd.client_id, metadata);
      return { client_id: cmd.client_id };
    }
    case 'trust':
      if (!cmd.issuer || !cmd.jwks_uri) throw new Error('issuer and jwks_uri are required');
      trusted.set(cmd.issuer, createRemoteJWKSet(new URL(cmd.jwks_uri)));
      return { trusted: cmd.issuer };
    case 'ttl':
      if (!Number.isInteger(cmd.seconds) || cmd.seconds <= 0) throw new Error('seconds must be a positive integer');
      ttl = cmd.seconds;
      return { ttl };
    case 'delay':
      if (!Number.isInteger(cmd.ms) || cmd.ms < 0) throw new Error('ms must be a non-negative integer');
      delayMs = cmd.ms;
      return { delay: delayMs };
    case 'down':
      down = true;
      return { down };
    case 'up':
      down = false;
      return { down };
    case 'count':
      return { ...counts };
    case 'last':
      return last;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

process.stdout.write(`${JSON.stringify({
  issuer, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`,
})}\n`);

serveCommands(handle);
