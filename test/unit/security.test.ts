import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT, base64url, type JWTPayload } from 'jose';
import pino from 'pino';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../dataplane/src/config/load.ts';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import { credentialConflict } from '../../dataplane/src/pipeline/auth.ts';
import { identityHeaderProblem } from '../../dataplane/src/pipeline/authorize.ts';
import { compileCors, normalizeOrigin, originAllowed } from '../../dataplane/src/pipeline/cors.ts';
import { claimList, createJwtVerifier, type JwtConfig } from '../../dataplane/src/pipeline/jwt.ts';
import { parseSize } from '../../dataplane/src/pipeline/limits.ts';
import { clientAddress, MemoryRateLimitStore, slidingWindowHit, type WindowCounts } from '../../dataplane/src/pipeline/ratelimit.ts';
import { ClientAddressResolver, type ClientAddress } from '../../dataplane/src/server/client-address.ts';
import { GatewayError } from '../../dataplane/src/proxy/errors.ts';
import { redact } from '../../dataplane/src/server/admin.ts';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function jwtConfig(jwt: Record<string, unknown>): JwtConfig {
  const { config } = parseConfig(stringify({ auth: { jwt } }), 'gateway.yaml', {});
  return config.auth.jwt as JwtConfig;
}

function configProblems(doc: Record<string, unknown>): string[] {
  try {
    parseConfig(stringify(doc), 'gateway.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

async function hs(payload: JWTPayload, options: { secret?: string; alg?: string; exp?: number | null; header?: Record<string, unknown> } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ iss: 'auth-service', aud: 'api-gateway', sub: 'user-1', iat: now, ...payload }).setProtectedHeader({ alg: options.alg ?? 'HS256', ...options.header });
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now + 600);
  return jwt.sign(enc(options.secret ?? SECRET), options.header?.crit ? { crit: Object.fromEntries((options.header.crit as string[]).map((c) => [c, true])) } : undefined);
}

async function rejectionOf(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected the token to be refused');
}

const base = { secret: SECRET, algorithm: 'HS256', issuer: 'auth-service', audience: 'api-gateway', leeway: '60s' };

describe('JWT verification', () => {
  it('accepts a valid HS256 token and reads sub, roles and permissions', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    const id = await verifier.verify(await hs({ roles: ['user', 'admin'], permissions: 'users:read users:write' }));
    expect(id).toEqual({ subject: 'user-1', roles: ['user', 'admin'], permissions: ['users:read', 'users:write'] });
  });

  it('refuses expired tokens beyond the leeway, accepts them within it', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    const now = Math.floor(Date.now() / 1000);
    const expired = await rejectionOf(verifier.verify(await hs({}, { exp: now - 120 })));
    expect(expired.status).toBe(401);
    expect(expired.message).toBe('the token has expired');
    expect(expired.headers?.['www-authenticate']).toBe('Bearer error="invalid_token", error_description="the token has expired"');
    await expect(verifier.verify(await hs({}, { exp: now - 30 }))).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('honours nbf with the leeway', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    const now = Math.floor(Date.now() / 1000);
    expect((await rejectionOf(verifier.verify(await hs({ nbf: now + 300 })))).message).toBe('the token is not valid yet');
    await expect(verifier.verify(await hs({ nbf: now + 30 }))).resolves.toBeDefined();
  });

  it('requires exp unless require_exp is false', async () => {
    const strict = (await createJwtVerifier(jwtConfig(base), silentLogger())).verifier;
    const lax = (await createJwtVerifier(jwtConfig({ ...base, require_exp: false }), silentLogger())).verifier;
    const token = await hs({}, { exp: null });
    expect((await rejectionOf(strict.verify(token))).message).toBe('the token has no expiry (exp)');
    await expect(lax.verify(token)).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('refuses a wrong issuer or audience', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    expect((await rejectionOf(verifier.verify(await hs({ iss: 'someone-else' })))).message).toBe('the token was not issued by an accepted issuer');
    expect((await rejectionOf(verifier.verify(await hs({ aud: 'another-api' })))).message).toBe('the token is not meant for this audience');
    expect((await rejectionOf(verifier.verify(await hs({ aud: undefined })))).message).toBe('the token is not meant for this audience');
  });

  it('refuses alg "none", an algorithm not configured, and a wrong signature', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify({ sub: 'admin', iss: 'auth-service', aud: 'api-gateway', exp: now + 600, roles: ['admin'] }))}.`;
    expect((await rejectionOf(verifier.verify(unsigned))).message).toBe('the token is signed with an algorithm that is not accepted');
    expect((await rejectionOf(verifier.verify(await hs({}, { alg: 'HS512' })))).message).toBe('the token is signed with an algorithm that is not accepted');
    expect((await rejectionOf(verifier.verify(await hs({}, { secret: 'another-secret-of-at-least-32-bytes!!' })))).message).toBe('the token signature is invalid');
    expect((await rejectionOf(verifier.verify('not.a.token'))).message).toBe('the token is malformed');
    expect((await rejectionOf(verifier.verify('x'.repeat(20_000)))).message).toBe('the token is too large');
  });

  it('refuses tokens with unknown critical header parameters', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    const token = await hs({}, { header: { crit: ['x-unknown'], 'x-unknown': 1 } });
    expect((await rejectionOf(verifier.verify(token))).message).toBe('the token has an unsupported critical header parameter');
  });

  it('accepts every secret in the rotation list', async () => {
    const next = 'the-next-secret-also-at-least-32-bytes-long';
    const { verifier } = await createJwtVerifier(jwtConfig({ ...base, secrets: [next] }), silentLogger());
    await expect(verifier.verify(await hs({ sub: 'a' }))).resolves.toMatchObject({ subject: 'a' });
    await expect(verifier.verify(await hs({ sub: 'b' }, { secret: next }))).resolves.toMatchObject({ subject: 'b' });
    // An expired token signed with the second secret is still reported as expired, not as a bad signature.
    expect((await rejectionOf(verifier.verify(await hs({ sub: 'c' }, { secret: next, exp: Math.floor(Date.now() / 1000) - 3600 })))).message).toBe('the token has expired');
  });

  it('refuses key confusion: an HS256 token keyed with the RSA public key', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const forged = await hs({ roles: ['admin'] }, { secret: pem });
    const rsaOnly = (await createJwtVerifier(jwtConfig({ public_key: pem, algorithm: 'RS256', issuer: 'auth-service', audience: 'api-gateway' }), silentLogger())).verifier;
    expect((await rejectionOf(rsaOnly.verify(forged))).message).toBe('the token is signed with an algorithm that is not accepted');
    // Even when HS256 is accepted too, HS tokens are only checked against the shared secrets.
    const both = (await createJwtVerifier(jwtConfig({ public_key: pem, secret: SECRET, algorithms: ['HS256', 'RS256'], issuer: 'auth-service', audience: 'api-gateway' }), silentLogger())).verifier;
    expect((await rejectionOf(both.verify(forged))).message).toBe('the token signature is invalid');
    const genuine = await new SignJWT({ sub: 'svc', iss: 'auth-service', aud: 'api-gateway', roles: 'service' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(privateKey);
    await expect(both.verify(genuine)).resolves.toEqual({ subject: 'svc', roles: ['service'], permissions: [] });
  });

  it.each([
    ['PS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['ES384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['EdDSA', () => generateKeyPairSync('ed25519')],
  ] as const)('verifies %s tokens with a PEM key from a file', async (alg, gen) => {
    const { publicKey, privateKey } = gen() as { publicKey: KeyObject; privateKey: KeyObject };
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'switchyard-key-')), 'key.pem');
    writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }));
    const { verifier } = await createJwtVerifier(jwtConfig({ public_key_file: file, algorithm: alg, issuer: 'i' }), silentLogger());
    const token = await new SignJWT({ sub: 'u', iss: 'i' }).setProtectedHeader({ alg }).setExpirationTime('5m').sign(privateKey);
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: 'u' });
    const other = gen() as { privateKey: KeyObject };
    const forged = await new SignJWT({ sub: 'u', iss: 'i' }).setProtectedHeader({ alg }).setExpirationTime('5m').sign(other.privateKey);
    expect((await rejectionOf(verifier.verify(forged))).message).toBe('the token signature is invalid');
  });

  it('reads roles from a configured, nested claim and accepts comma- or space-separated strings', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig({ ...base, roles_claim: 'realm_access.roles', permissions_claim: 'scope' }), silentLogger());
    const id = await verifier.verify(await hs({ realm_access: { roles: ['user', 7, 'admin'] }, scope: 'users:read,users:write  admin:x' }));
    expect(id.roles).toEqual(['user', 'admin']);
    expect(id.permissions).toEqual(['users:read', 'users:write', 'admin:x']);
    expect(claimList(undefined)).toEqual([]);
    expect(claimList({ admin: true })).toEqual([]);
  });

  it('refuses a token without a subject', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig(base), silentLogger());
    expect((await rejectionOf(verifier.verify(await hs({ sub: undefined })))).message).toBe('the token has no subject (sub)');
  });

  it('caches verified tokens by hash, bounded, and never past their expiry', async () => {
    const { verifier } = await createJwtVerifier(jwtConfig({ ...base, cache_size: 2, leeway: '0s' }), silentLogger());
    const now = Math.floor(Date.now() / 1000);
    const short = await hs({ sub: 'short' }, { exp: now + 1 });
    await verifier.verify(short);
    await verifier.verify(await hs({ sub: 'b' }));
    await verifier.verify(await hs({ sub: 'c' }));
    expect(verifier.cachedTokens).toBe(2);
    const again = await hs({ sub: 'c2' });
    await verifier.verify(again);
    await verifier.verify(again);
    expect(verifier.cachedTokens).toBe(2);
    const cachedShort = await hs({ sub: 'short2' }, { exp: now + 1 });
    await verifier.verify(cachedShort);
    await new Promise((r) => setTimeout(r, (now + 1) * 1000 - Date.now() + 50));
    expect((await rejectionOf(verifier.verify(cachedShort))).message).toBe('the token has expired');
  });
});

describe('logging', () => {
  it('never writes a token, or a part of one, to the log', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
    const { verifier } = await createJwtVerifier(jwtConfig(base), log);
    const tokens = [await hs({}, { exp: 1 }), await hs({ iss: 'x' }), await hs({}, { secret: 'wrong-secret-wrong-secret-wrong-secret!' }), 'abc.def.ghi'];
    for (const t of tokens) await verifier.verify(t).catch(() => undefined);
    expect(lines.length).toBeGreaterThan(0);
    for (const t of tokens) for (const part of t.split('.').filter((p) => p.length > 8)) expect(lines.join('')).not.toContain(part);
  });
});

describe('the admin config dump', () => {
  it('redacts every rotation secret and the password in a Redis URL', () => {
    const dump = JSON.stringify(redact({ auth: { jwt: { secret: 's1', secrets: ['s2', 's3'], issuer: 'auth-service' } }, middleware: { rate_limiting: { storage: { url: 'redis://default:hunter2@redis:6379/0' } } } }));
    for (const s of ['s1', 's2', 's3', 'hunter2']) expect(dump).not.toContain(`"${s}`);
    expect(dump).not.toContain('hunter2');
    expect(dump).toContain('redis://default:[redacted]@redis:6379/0');
    expect(dump).toContain('auth-service');
  });
});

describe('JWT configuration errors name the field', () => {
  it.each([
    [{ algorithm: 'HS256', issuer: 'x' }, 'auth.jwt.algorithm: auth.jwt.algorithm HS256 needs auth.jwt.secret (or auth.jwt.secrets)'],
    [{ algorithm: 'RS256', secret: SECRET }, 'auth.jwt.algorithm: auth.jwt.algorithm RS256 needs auth.jwt.public_key, auth.jwt.public_key_file or auth.jwt.jwks_url'],
    [{ algorithm: 'none', secret: SECRET }, 'auth.jwt.algorithm: "none" (unsigned tokens) is never accepted'],
    [{ algorithms: ['HS256', 'XS1'], secret: SECRET }, 'auth.jwt.algorithms[1]: "XS1" is not supported'],
    [{ algorithm: 'HS256', algorithms: ['HS256'], secret: SECRET }, 'auth.jwt.algorithms: set either auth.jwt.algorithm or auth.jwt.algorithms, not both'],
    [{ secret: '' }, 'auth.jwt.secret: the secret is empty'],
    [{ jwks_url: 'ftp://keys', algorithm: 'RS256' }, 'auth.jwt.jwks_url: expected an http:// or https:// URL'],
    [{ secret: SECRET, algorithm: 'ES256', public_key: 'x' }, 'auth.jwt.secret: a shared secret is set but no HS* algorithm is accepted'],
    [{ issuer: 'x' }, 'auth.jwt: set auth.jwt.secret (HS256), auth.jwt.public_key, auth.jwt.public_key_file or auth.jwt.jwks_url'],
  ])('%j', (jwt, expected) => {
    const problems = configProblems({ auth: { jwt } });
    expect(problems.join('\n')).toContain(expected);
  });

  it('reports a missing ${JWT_SECRET} by its field', () => {
    expect(() => parseConfig('auth:\n  jwt:\n    secret: "${JWT_SECRET}"\n    algorithm: HS256\n', 'gateway.yaml', {})).toThrow(/gateway.yaml:3: auth.jwt.secret: environment variable JWT_SECRET is not set/);
  });

  it('refuses unusable key material at start', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await expect(createJwtVerifier(jwtConfig({ public_key: pem, algorithm: 'RS256' }), silentLogger())).rejects.toThrow('auth.jwt.public_key: an EC prime256v1 key cannot verify RS256');
    await expect(createJwtVerifier(jwtConfig({ public_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, algorithm: 'ES256' }), silentLogger())).rejects.toThrow(/private key/);
    await expect(createJwtVerifier(jwtConfig({ public_key: 'not a key', algorithm: 'ES256' }), silentLogger())).rejects.toThrow(/expected a PEM public key/);
    await expect(createJwtVerifier(jwtConfig({ public_key_file: '/nonexistent/key.pem', algorithm: 'ES256' }), silentLogger())).rejects.toThrow('auth.jwt.public_key_file: cannot read /nonexistent/key.pem: ENOENT');
    // Config validation refuses it first (below); the verifier refuses it too when handed one directly.
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await expect(createJwtVerifier({ public_key: small, algorithm: 'RS256' } as JwtConfig, silentLogger())).rejects.toThrow(/shorter than 2048 bits/);
  });

  it('warns about a missing issuer', async () => {
    const { warnings } = await createJwtVerifier(jwtConfig({ secret: SECRET, algorithm: 'HS256' }), silentLogger());
    expect(warnings.join('\n')).toContain('auth.jwt.issuer is not set');
  });

  it.each([
    [{ secret: 'x'.repeat(31) }, 'gateway.yaml:3: auth.jwt.secret: the secret is 31 bytes; HS256 needs at least 32 bytes (RFC 7518 section 3.2). Generate one with: openssl rand -base64 32'],
    [{ secret: 'x'.repeat(47), algorithm: 'HS384' }, 'gateway.yaml:3: auth.jwt.secret: the secret is 47 bytes; HS384 needs at least 48 bytes'],
    [{ secret: 'x'.repeat(63), algorithm: 'HS512' }, 'gateway.yaml:3: auth.jwt.secret: the secret is 63 bytes; HS512 needs at least 64 bytes'],
    [{ secret: 'x'.repeat(40), algorithms: ['HS256', 'HS512'] }, 'auth.jwt.secret: the secret is 40 bytes; HS512 needs at least 64 bytes'],
    [{ secret: SECRET, secrets: [SECRET, 'rotated-but-short'] }, 'gateway.yaml:6: auth.jwt.secrets[1]: the secret is 17 bytes; HS256 needs at least 32 bytes'],
    // UTF-8 bytes, not characters: 15 two-byte characters are 30 bytes.
    [{ secret: '\u00e9'.repeat(15) }, 'auth.jwt.secret: the secret is 30 bytes; HS256 needs at least 32 bytes'],
  ])('refuses the secret of %j as too short for its algorithm, naming the field and the length', (jwt, message) => {
    const problems = configProblems({ auth: { jwt } });
    expect(problems.join('\n')).toContain(message);
    expect(problems.join('\n')).not.toContain('xxxx');
  });

  it('counts a secret in UTF-8 bytes and accepts one as long as the hash', () => {
    expect(configProblems({ auth: { jwt: { secret: '\u00e9'.repeat(16) } } })).toEqual([]);
    expect(configProblems({ auth: { jwt: { secret: 'x'.repeat(64), algorithm: 'HS512' } } })).toEqual([]);
  });

  it('refuses RSA keys under 2048 bits in public_key and public_key_file, with the line', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const good = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(configProblems({ auth: { jwt: { public_key: small, algorithm: 'RS256' } } })).toEqual([expect.stringMatching(/^gateway\.yaml:\d+: auth\.jwt\.public_key: a 1024-bit RSA key is too weak; RSA keys need at least 2048 bits$/)]);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'switchyard-keys-')), 'keys.pem');
    writeFileSync(file, good + small);
    expect(configProblems({ auth: { jwt: { public_key_file: file, algorithm: 'RS256' } } })).toEqual([`gateway.yaml:3: auth.jwt.public_key_file: ${file}: PEM block 2: a 1024-bit RSA key is too weak; RSA keys need at least 2048 bits`]);
    expect(configProblems({ auth: { jwt: { public_key: good, algorithm: 'RS256' } } })).toEqual([]);
  });

  it('refuses CORS "*" with credentials and a Redis store without a URL', () => {
    expect(configProblems({ middleware: { cors: { allowed_origins: ['*'], allow_credentials: true } } }).join('\n')).toContain('middleware.cors.allowed_origins: "*" cannot be combined with allow_credentials');
    expect(configProblems({ middleware: { rate_limiting: { storage: { type: 'Redis' } } } }).join('\n')).toContain('middleware.rate_limiting.storage.url: a Redis URL');
    expect(configProblems({ middleware: { rate_limiting: { storage: { type: 'Redis', url: 'http://x' } } } }).join('\n')).toContain('expected a redis:// or rediss:// URL');
  });
});

describe('identity headers', () => {
  const id = (subject: string, roles: string[] = [], permissions: string[] = []): { subject: string; roles: string[]; permissions: string[] } => ({ subject, roles, permissions });
  it('accepts printable ASCII', () => {
    expect(identityHeaderProblem(id('user-1@example.com', ['user', 'admin'], ['users:read']))).toBeUndefined();
  });
  it.each([
    ['CR LF in the subject', id('alice\r\nX-User-Roles: admin')],
    ['a NUL', id('alice\u0000')],
    ['a tab', id('al\tice')],
    ['non-Latin-1', id('alice\u2028')],
    ['Latin-1 that decodes differently as UTF-8', id('jos\u00e9')],
    ['a leading space', id(' admin')],
    ['an empty subject', id('')],
    ['a comma inside a role', id('alice', ['user,admin'])],
    ['a newline in a permission', id('alice', [], ['a\nb'])],
  ])('refuses %s', (_what, identity) => {
    expect(identityHeaderProblem(identity)).toMatch(/cannot be forwarded safely/);
  });
});

describe('credentials in more than one place', () => {
  const verifier = { cookie: 'session', header: 'X-Auth-Token' };
  it.each([
    [['Authorization', 'Bearer a'], undefined],
    [['Cookie', 'theme=dark; session=a'], undefined],
    [['X-Auth-Token', 'a', 'Cookie', 'sessionid=b; session_x=c'], undefined],
    [['Authorization', 'Basic YQ==', 'Cookie', 'session=b'], 'Authorization header, cookie "session"'],
    [['Cookie', 'session=a; session=b'], 'cookie "session", cookie "session"'],
    [['Cookie', 'session=a', 'cookie', 'session=b'], 'cookie "session", cookie "session"'],
    [['x-auth-token', 'a', 'Cookie', 'session=b'], 'X-Auth-Token header, cookie "session"'],
  ])('%j: %s', (raw, where) => {
    const problem = credentialConflict(raw, verifier);
    if (where === undefined) expect(problem).toBeUndefined();
    else expect(problem).toBe(`the request carries more than one credential (${where}); send exactly one`);
  });
  it('reads no cookie or header the verifier does not use', () => {
    expect(credentialConflict(['Authorization', 'Bearer a', 'Cookie', 'session=b', 'X-Auth-Token', 'c'], {})).toBeUndefined();
  });
});

describe('sliding window', () => {
  const W = 60_000;
  function run(limit: number, times: number[]): { allowed: boolean[]; state: WindowCounts | undefined } {
    let state: WindowCounts | undefined;
    const allowed = times.map((t) => {
      const r = slidingWindowHit(state, limit, W, t);
      if (r.next) state = r.next;
      return r.decision.allowed;
    });
    return { allowed, state };
  }

  it('allows exactly the limit in a fresh window and counts down remaining', () => {
    const t0 = 10 * W;
    let state: WindowCounts | undefined;
    const remaining: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = slidingWindowHit(state, 5, W, t0 + i);
      if (r.next) state = r.next;
      remaining.push(r.decision.allowed ? r.decision.remaining : -1);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0, -1]);
  });

  it('does not allow twice the limit across a window boundary', () => {
    const t0 = 10 * W;
    const { allowed } = run(10, [...Array.from({ length: 10 }, () => t0 + W - 1000), ...Array.from({ length: 10 }, () => t0 + W + 1000)]);
    // At the boundary the previous window still weighs ~97%: at most one more request gets in.
    expect(allowed.filter(Boolean).length).toBe(11);
  });

  it('gives an exact Retry-After: the first moment the estimate drops below the limit', () => {
    const t0 = 10 * W;
    let state: WindowCounts | undefined;
    for (let i = 0; i < 10; i++) state = slidingWindowHit(state, 10, W, t0 + 1000).next ?? state;
    const refused = slidingWindowHit(state, 10, W, t0 + 2000).decision;
    expect(refused.allowed).toBe(false);
    expect(refused.resetMs).toBe(W - 2000);
    const at = t0 + 2000 + refused.retryAfterMs;
    expect(slidingWindowHit(state, 10, W, at - 2).decision.allowed).toBe(false);
    expect(slidingWindowHit(state, 10, W, at).decision.allowed).toBe(true);
  });

  it('computes Retry-After inside the window when the previous window is what blocks', () => {
    const t0 = 10 * W;
    let state: WindowCounts | undefined;
    for (let i = 0; i < 10; i++) state = slidingWindowHit(state, 10, W, t0 + W - 10).next ?? state;
    const first = slidingWindowHit(state, 10, W, t0 + W + 100);
    expect(first.decision.allowed).toBe(true);
    state = first.next;
    const refused = slidingWindowHit(state, 10, W, t0 + W + 200).decision;
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeLessThan(W - 200);
    expect(slidingWindowHit(state, 10, W, t0 + W + 200 + refused.retryAfterMs).decision.allowed).toBe(true);
  });

  it('a limit of 0 refuses everything', () => {
    expect(run(0, [1, 2, 3]).allowed).toEqual([false, false, false]);
  });

  it('the memory store forgets the least recently seen clients past its bound', () => {
    const store = new MemoryRateLimitStore({ maxKeys: 3, now: () => 5 * W });
    for (const k of ['a', 'b', 'c', 'd']) store.hitNow(k, 1, W);
    expect(store.size).toBe(3);
    expect(store.hitNow('d', 1, W).allowed).toBe(false);
    expect(store.hitNow('a', 1, W).allowed).toBe(true);
  });
});

describe('client address (server.trusted_proxies)', () => {
  const walk = (settings: { cidrs?: string[]; hops?: number }, xff: string | undefined, peer = '10.0.0.2'): ClientAddress =>
    new ClientAddressResolver({ cidrs: settings.cidrs ?? [], hops: settings.hops ?? 0 }).walk(peer, xff === undefined ? [] : xff.split(',').map((s) => s.trim()));
  it('believes no X-Forwarded-For by default, not even from private or loopback peers', () => {
    expect(walk({}, '203.0.113.7')).toEqual({ client: '10.0.0.2', chain: ['10.0.0.2'] });
    expect(walk({}, '203.0.113.7', '127.0.0.1')).toEqual({ client: '127.0.0.1', chain: ['127.0.0.1'] });
  });
  it('with hops, takes the entry the trusted proxies appended, never one the client wrote', () => {
    expect(walk({ hops: 1 }, '198.51.100.1, 203.0.113.7')).toEqual({ client: '203.0.113.7', chain: ['203.0.113.7', '10.0.0.2'] });
    expect(walk({ hops: 2 }, '198.51.100.1, 203.0.113.7, 10.0.0.9')).toEqual({ client: '203.0.113.7', chain: ['203.0.113.7', '10.0.0.9', '10.0.0.2'] });
    expect(walk({ hops: 1 }, '203.0.113.7:4711').client).toBe('203.0.113.7');
    expect(walk({ hops: 1 }, '[2001:db8::5]:443').client).toBe('2001:db8::5');
    expect(walk({ hops: 1 }, '::ffff:203.0.113.7').client).toBe('203.0.113.7');
    expect(walk({ hops: 1 }, 'not-an-ip')).toEqual({ client: '10.0.0.2', chain: ['10.0.0.2'] });
    expect(walk({ hops: 1 }, undefined).client).toBe('10.0.0.2');
    // Fewer entries than hops: the leftmost is the best there is.
    expect(walk({ hops: 3 }, '203.0.113.7').client).toBe('203.0.113.7');
  });
  it('with cidrs, walks from the right through trusted proxies and stops at the first address that is not one', () => {
    const cidrs = ['10.0.0.0/8', '2001:db8:ffff::/48'];
    expect(walk({ cidrs }, '198.51.100.1, 203.0.113.7, 10.1.2.3')).toEqual({ client: '203.0.113.7', chain: ['203.0.113.7', '10.1.2.3', '10.0.0.2'] });
    expect(walk({ cidrs }, '203.0.113.7', '192.0.2.1')).toEqual({ client: '192.0.2.1', chain: ['192.0.2.1'] });
    expect(walk({ cidrs }, '10.9.9.9, 10.8.8.8')).toEqual({ client: '10.9.9.9', chain: ['10.9.9.9', '10.8.8.8', '10.0.0.2'] });
    expect(walk({ cidrs }, '203.0.113.7', '2001:db8:ffff::1').client).toBe('203.0.113.7');
    expect(walk({ cidrs: ['10.0.0.2'] }, '203.0.113.7').client).toBe('203.0.113.7');
    expect(walk({ cidrs }, '203.0.113.7, garbage').client).toBe('10.0.0.2');
  });
  it('with both, counts hops only from a peer in cidrs', () => {
    expect(walk({ cidrs: ['10.0.0.0/8'], hops: 1 }, '198.51.100.1, 203.0.113.7').client).toBe('203.0.113.7');
    expect(walk({ cidrs: ['10.0.0.0/8'], hops: 1 }, '198.51.100.1, 203.0.113.7', '192.0.2.1').client).toBe('192.0.2.1');
    expect(walk({ cidrs: ['10.0.0.0/8'], hops: 2 }, '198.51.100.1, 203.0.113.7, 192.0.2.9').client).toBe('203.0.113.7');
  });
  it('reads the deprecated middleware.rate_limiting.trusted_proxy_hops as server.trusted_proxies.hops, with a warning', () => {
    const { config, warnings } = parseConfig(stringify({ middleware: { rate_limiting: { trusted_proxy_hops: 2 } } }), 'gateway.yaml', {});
    expect(config.server.trusted_proxies).toEqual({ cidrs: [], hops: 2 });
    expect(warnings).toEqual([expect.stringMatching(/^gateway\.yaml:3: middleware\.rate_limiting\.trusted_proxy_hops: deprecated; use server\.trusted_proxies\.hops/)]);
    // Defaults are not shared between parses.
    expect(parseConfig('{}', 'gateway.yaml', {}).config.server.trusted_proxies).toEqual({ cidrs: [], hops: 0 });
    expect(parseConfig('{}', 'gateway.yaml', { GATEWAY_SERVER_TRUSTED_PROXIES_CIDRS: '10.0.0.0/8, 192.0.2.1', GATEWAY_SERVER_TRUSTED_PROXIES_HOPS: '1' }).config.server.trusted_proxies).toEqual({ cidrs: ['10.0.0.0/8', '192.0.2.1'], hops: 1 });
    expect(configProblems({ server: { trusted_proxies: { hops: 1 } }, middleware: { rate_limiting: { trusted_proxy_hops: 2 } } })).toEqual([
      'gateway.yaml:6: middleware.rate_limiting.trusted_proxy_hops: deprecated, and it disagrees with server.trusted_proxies.hops (1); keep only server.trusted_proxies.hops',
    ]);
  });
  it('groups IPv6 clients by /64 for rate limits', () => {
    expect(clientAddress({ clientIp: '2001:db8:1:2:aaaa::1' })).toBe('2001:db8:1:2::/64');
    expect(clientAddress({ clientIp: '2001:db8::1' })).toBe('2001:db8:0:0::/64');
    expect(clientAddress({ clientIp: '203.0.113.7' })).toBe('203.0.113.7');
  });
  it.each([
    ['10.0.0.0/33', 'server.trusted_proxies.cidrs[1]: "10.0.0.0/33": the prefix length must be at most 32'],
    ['10.0.0/8', 'server.trusted_proxies.cidrs[1]: "10.0.0/8" is not an IP address or CIDR block; expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32'],
    ['2001:db8::/129', 'server.trusted_proxies.cidrs[1]: "2001:db8::/129": the prefix length must be at most 128'],
  ])('refuses the trusted block %s, naming it', (cidr, message) => {
    expect(configProblems({ server: { trusted_proxies: { cidrs: ['192.0.2.0/24', cidr] } } })).toEqual([`gateway.yaml:5: ${message}`]);
  });
});

describe('CORS origins', () => {
  const policy = (allowedOrigins: string[], allowCredentials = false): ReturnType<typeof compileCors> =>
    compileCors({ allowedOrigins, allowedMethods: ['GET'], allowedHeaders: [], exposedHeaders: [], allowCredentials, maxAgeSeconds: 0 });
  it('normalizes configured origins as browsers serialize them', () => {
    expect(normalizeOrigin('HTTPS://App.Example.com:443/')).toBe('https://app.example.com');
    expect(normalizeOrigin('http://localhost:3000')).toBe('http://localhost:3000');
    expect(normalizeOrigin('https://*.Example.com')).toBe('https://*.example.com');
  });
  it('matches exact origins and subdomain wildcards, nothing looser', () => {
    const c = policy(['https://app.example.com', 'https://*.example.org']);
    expect(originAllowed(c, 'https://app.example.com')).toBe(true);
    expect(originAllowed(c, 'https://APP.example.com')).toBe(true);
    expect(originAllowed(c, 'http://app.example.com')).toBe(false);
    expect(originAllowed(c, 'https://app.example.com.evil.net')).toBe(false);
    expect(originAllowed(c, 'https://evilapp.example.com')).toBe(false);
    expect(originAllowed(c, 'https://a.b.example.org')).toBe(true);
    expect(originAllowed(c, 'https://example.org')).toBe(false);
    expect(originAllowed(c, 'https://evil.net/.example.org')).toBe(false);
    expect(originAllowed(c, 'https://evil.net?.example.org')).toBe(false);
    expect(originAllowed(c, 'https://example.org:8443')).toBe(false);
    expect(originAllowed(c, 'null')).toBe(false);
  });
  it('"*" allows nothing once credentials are on', () => {
    expect(originAllowed(policy(['*']), 'https://any.example')).toBe(true);
    expect(originAllowed(policy(['*'], true), 'https://any.example')).toBe(false);
  });
});

describe('sizes', () => {
  it.each([
    ['10MiB', 10 * 1024 * 1024],
    ['1MB', 1_000_000],
    ['512KiB', 512 * 1024],
    ['2k', 2048],
    ['100', 100],
    [4096, 4096],
  ] as const)('%s', (text, bytes) => expect(parseSize(text)).toBe(bytes));
  it('refuses what is not a size', () => {
    expect(parseSize('ten megabytes')).toBeUndefined();
    expect(parseSize('10 parsecs')).toBeUndefined();
    expect(parseSize(-1)).toBeUndefined();
  });
});
