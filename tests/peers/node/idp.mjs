// A real OAuth 2 / OIDC identity provider for Sluice's auth tests: oauth2-mock-server's
// issuer and service (metadata at /.well-known/openid-configuration, keys at /jwks), behind a
// plain node:http server on 127.0.0.1 that counts requests and can play "down" (503).
//
// It prints one JSON line {"issuer": "http://127.0.0.1:PORT"} when listening, then answers
// one JSON command per stdin line with one JSON line on stdout:
//   {"op":"token","claims":{...},"kid":"k","typ":"JWT","expires_in":300}
//       signs with the key `kid` (default: the first); claims override the defaults
//       (iss, iat, exp, nbf); a claim set to null is removed
//       ("header_kid" names another kid in the header: a key the IdP never published)
//   {"op":"hs256","claims":{...},"kid":"k"}   HS256 keyed with that key's public JWK (forgery)
//   {"op":"none","claims":{...}}             an unsigned token (alg none)
//   {"op":"add_key","alg":"RS256","kid":"k"} publishes one more key
//   {"op":"rotate","alg":"RS256","kid":"k"}  replaces every published key with a new one
//   {"op":"down"} / {"op":"up"}              metadata and keys answer 503 / normally
//   {"op":"count"}                           {"jwks": n, "metadata": n}
// It exits when stdin closes.
import http from 'node:http';
import { serveCommands } from './commands.mjs';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';
import { SignJWT, importJWK } from 'jose';

let issuer = new OAuth2Issuer();
let service;
let down = false;
const counts = { jwks: 0, metadata: 0 };

const server = http.createServer((req, res) => {
  const path = (req.url || '').split('?')[0];
  if (path === '/jwks') counts.jwks += 1;
  if (path.startsWith('/.well-known/')) counts.metadata += 1;
  if (down) {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('identity provider is down');
    return;
  }
  service.requestHandler(req, res);
});

async function newIssuer(alg, kid) {
  const next = new OAuth2Issuer();
  next.url = issuer.url;
  await next.keys.generate(alg, { kid });
  issuer = next;
  service = new OAuth2Service(issuer);
}

function privateKey(kid) {
  const keys = issuer.keys.toJSON(true);
  const key = kid === undefined ? keys[0] : keys.find((k) => k.kid === kid);
  if (!key) throw new Error(`no key ${kid}`);
  return key;
}

function payload(claims) {
  const now = Math.floor(Date.now() / 1000);
  const p = { iss: issuer.url, iat: now, exp: now + 300, nbf: now - 10, ...claims };
  for (const [k, v] of Object.entries(p)) if (v === null) delete p[k];
  return p;
}

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function handle(cmd) {
  switch (cmd.op) {
    case 'token': {
      const key = privateKey(cmd.kid);
      const header = { alg: key.alg, kid: cmd.header_kid ?? key.kid, typ: cmd.typ ?? 'JWT' };
      const token = await new SignJWT(payload(cmd.claims ?? {}))
        .setProtectedHeader(header)
        .sign(await importJWK(key, key.alg));
      return { token };
    }
    case 'hs256': {
      const pub = issuer.keys.toJSON().find((k) => cmd.kid === undefined || k.kid === cmd.kid);
      const secret = new TextEncoder().encode(JSON.stringify(pub));
      const token = await new SignJWT(payload(cmd.claims ?? {}))
        .setProtectedHeader({ alg: 'HS256', kid: pub.kid, typ: 'JWT' })
        .sign(secret);
      return { token };
    }
    case 'none':
      return { token: `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload(cmd.claims ?? {}))}.` };
    case 'add_key':
      await issuer.keys.generate(cmd.alg, { kid: cmd.kid });
      return { kid: cmd.kid };
    case 'rotate':
      await newIssuer(cmd.alg, cmd.kid);
      return { kid: cmd.kid };
    case 'down':
      down = true;
      return { down };
    case 'up':
      down = false;
      return { down };
    case 'count':
      return { ...counts };
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const started = new Promise((resolve) => {
  server.listen(0, '127.0.0.1', async () => {
    issuer.url = `http://127.0.0.1:${server.address().port}`;
    await newIssuer('RS256', 'rsa-1');
    await issuer.keys.generate('ES256', { kid: 'ec-1' });
    process.stdout.write(`${JSON.stringify({ issuer: issuer.url })}\n`);
    resolve();
  });
});
serveCommands(handle, started);
