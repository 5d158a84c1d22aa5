/**
 * JWT verification with jose: the `auth.jwt` section made into a TokenVerifier.
 *
 * The accepted algorithms come from the config only. A token's own header is
 * read to pick among the configured keys, never to choose what kind of check
 * to run: an HS256 token is only ever checked against the shared secrets and
 * an RS256 token only against RSA public keys, so a token "signed" with the
 * RSA public key as an HMAC secret (key confusion) and `alg: none` fail like
 * any other token whose algorithm is not on the list.
 *
 * Verified tokens are remembered by SHA-256 until they expire, in a bounded
 * LRU, so a client sending the same token on every request costs one hash.
 * Tokens never reach a log line, in full or in part.
 */
import { createHash, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type CryptoKey, type FlattenedJWSInput, type JWK, type JWTHeaderParameters, type JWTPayload, type JWTVerifyOptions, type RemoteJWKSet } from 'jose';
import { parseDuration } from '../contract/duration.ts';
import { jwtAlgorithms, type GatewayConfig } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';
import { MIN_RSA_BITS, rsaModulusBits } from '../config/key-strength.ts';
import type { Logger } from '../observability/logger.ts';
import { GatewayError } from '../proxy/errors.ts';
import { challenge, type TokenVerifier } from './auth.ts';
import type { Identity } from './context.ts';

/** The `auth.jwt` section as validated by the config schema. */
export type JwtConfig = NonNullable<GatewayConfig['auth']['jwt']>;

/** Longer tokens are refused before any parsing; real ones are a few hundred bytes to a few kilobytes. */
const MAX_TOKEN_LENGTH = 16 * 1024;
/** A cached verification is redone after this long even if the token lives longer, so key removals take effect. */
const MAX_CACHE_LIFETIME_MS = 10 * 60_000;
/** After a failed JWKS fetch, no new fetch starts for this long: requests use the keys they have or fail fast. */
const JWKS_FAILURE_BACKOFF_MS = 1_000;

type StaticKey = { key: KeyObject; source: string };

/** Which configured keys can check a token signed with `alg`. */
function keyFits(alg: string, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg === 'ES256') return type === 'ec' && curve === 'prime256v1';
  if (alg === 'ES384') return type === 'ec' && curve === 'secp384r1';
  if (alg === 'ES512') return type === 'ec' && curve === 'secp521r1';
  if (alg === 'EdDSA' || alg === 'Ed25519') return type === 'ed25519';
  return false;
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') return `an EC ${d?.namedCurve ?? ''} key`;
  if (key.asymmetricKeyType?.startsWith('rsa')) return `a ${d?.modulusLength ?? '?'}-bit ${key.asymmetricKeyType.toUpperCase()} key`;
  return `an ${key.asymmetricKeyType ?? 'unknown'} key`;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** Every public key or certificate in a PEM text; private keys are refused, since the gateway only verifies. */
function parsePublicKeys(pem: string, field: string, algorithms: readonly string[]): { keys: StaticKey[]; problems: string[] } {
  const keys: StaticKey[] = [];
  const problems: string[] = [];
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) return { keys, problems: [`${field}: expected a PEM public key ("-----BEGIN PUBLIC KEY-----") or certificate`] };
  blocks.forEach((m, i) => {
    const where = blocks.length > 1 ? `${field} (PEM block ${i + 1})` : field;
    if ((m[1] as string).includes('PRIVATE')) {
      problems.push(`${where}: this is a private key; the gateway needs only the public key (openssl pkey -pubout)`);
      return;
    }
    let key: KeyObject;
    try {
      key = createPublicKey(m[0]);
    } catch (err) {
      problems.push(`${where}: not a usable public key: ${(err as Error).message}`);
      return;
    }
    const asymmetric = algorithms.filter((a) => !a.startsWith('HS'));
    if (!asymmetric.some((a) => keyFits(a, key))) {
      problems.push(`${where}: ${describeKey(key)} cannot verify ${asymmetric.join(', ') || 'any accepted algorithm'}`);
      return;
    }
    if (key.asymmetricKeyType?.startsWith('rsa') && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
      problems.push(`${where}: RSA keys shorter than ${MIN_RSA_BITS} bits are refused`);
      return;
    }
    keys.push({ key, source: where });
  });
  return { keys, problems };
}

/** Reads a claim by name; dots reach into nested objects (`realm_access.roles`). */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let node: unknown = payload;
  for (const part of path.split('.')) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** A list claim: an array of strings, or one string separated by spaces or commas (OAuth `scope` style). */
export function claimList(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter((s) => s !== '');
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '');
  return [];
}

const invalid = (description: string): GatewayError => challenge(description, 'invalid_token');

/** Turns a jose failure into the 401 a client sees; the description never echoes token content. */
function rejection(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof errors.JWTExpired) return invalid('the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return invalid('the token is not valid yet');
      case 'iss':
        return invalid('the token was not issued by an accepted issuer');
      case 'aud':
        return invalid('the token is not meant for this audience');
      case 'exp':
        return invalid(err.reason === 'missing' ? 'the token has no expiry (exp)' : 'the token expiry (exp) is invalid');
      default:
        return invalid(`the token's "${err.claim.replace(/[^A-Za-z0-9_.-]/g, '')}" claim is invalid`);
    }
  }
  if (err instanceof errors.JOSEError && /crit|extension header/i.test(err.message)) return invalid('the token has an unsupported critical header parameter');
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return invalid('the token is signed with an algorithm that is not accepted');
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('the token signature is invalid');
  if (err instanceof errors.JWKSNoMatchingKey) return invalid('no known key matches the token');
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return invalid('the token is malformed');
  if (err instanceof TypeError) return invalid('the token does not fit the configured keys');
  return invalid('the token could not be verified');
}

function jwksUnavailable(): GatewayError {
  return new GatewayError('route_unavailable', 'the keys that verify tokens cannot be fetched right now', { 'retry-after': '5' });
}

/**
 * The keys of a remote JWKS. jose's remote set fetches (with a timeout,
 * deduplicating concurrent fetches) and tracks freshness and the cooldown;
 * keys are resolved from the last good set, so that:
 * - an unknown `kid` refetches at most once per cooldown, however many bad
 *   tokens arrive;
 * - a set past its max age is refreshed in the background while the old keys
 *   keep verifying (a JWKS outage does not log everybody out);
 * - a failed fetch is not retried for a second, so an unreachable endpoint is
 *   not hammered and requests do not queue behind its timeout;
 * - RSA keys under 2048 bits are left out of the set, with one warning per
 *   key (not per request or per fetch).
 */
export class JwksKeys {
  private readonly remote: RemoteJWKSet;
  private readonly log: Logger;
  private local: ReturnType<typeof createLocalJWKSet> | undefined;
  private failedAt = -Infinity;
  private warnedAt = -Infinity;
  /** Weak keys already reported, so each is logged once. */
  private readonly skipped = new Set<string>();
  /** Fetches attempted (for tests and the admin dump). */
  fetches = 0;

  constructor(remote: RemoteJWKSet, log: Logger) {
    this.remote = remote;
    this.log = log;
  }

  /** Fetches the set now unless a fetch failed a moment ago; resolves whether the keys were refreshed. */
  async refresh(): Promise<boolean> {
    if (Date.now() - this.failedAt < JWKS_FAILURE_BACKOFF_MS) return false;
    try {
      if (!this.remote.reloading) this.fetches++;
      await this.remote.reload();
    } catch (err) {
      this.failedAt = Date.now();
      if (Date.now() - this.warnedAt > 30_000) {
        this.warnedAt = Date.now();
        this.log.warn({ event: 'jwks_fetch_failed', err: (err as Error).message, keysCached: this.local !== undefined }, 'cannot fetch the JWKS; using the keys already fetched, if any');
      }
      return false;
    }
    const set = this.remote.jwks();
    if (set) this.local = createLocalJWKSet({ keys: this.usable(set.keys) });
    return true;
  }

  /** The keys of a fetched set that are strong enough; the others are skipped and logged once each. */
  private usable(keys: JWK[]): JWK[] {
    return keys.filter((k) => {
      if (k.kty !== 'RSA' || typeof k.n !== 'string') return true;
      const bits = rsaModulusBits(k.n);
      if (bits >= MIN_RSA_BITS) return true;
      const id = `${k.kid ?? ''}/${k.n}`;
      if (!this.skipped.has(id)) {
        this.skipped.add(id);
        this.log.warn({ event: 'jwks_key_skipped', kid: k.kid ?? null, bits }, `a ${bits}-bit RSA key in the JWKS is skipped: RSA keys need at least ${MIN_RSA_BITS} bits`);
      }
      return false;
    });
  }

  /** A jose key resolver. */
  readonly resolve = async (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    if (!this.local) await this.refresh();
    else if (!this.remote.fresh) void this.refresh();
    const local = this.local;
    if (!local) throw jwksUnavailable();
    try {
      return await local(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey && !this.remote.coolingDown && (await this.refresh()) && this.local) return this.local(header, token);
      throw err;
    }
  };
}

/** Bounded LRU of verified tokens keyed by their SHA-256, each valid until its own deadline. */
class VerifiedTokenCache {
  private readonly entries = new Map<string, { identity: Identity; until: number }>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(digest: string, now: number): Identity | undefined {
    const hit = this.entries.get(digest);
    if (!hit) return undefined;
    this.entries.delete(digest);
    if (hit.until <= now) return undefined;
    this.entries.set(digest, hit);
    return hit.identity;
  }
  set(digest: string, identity: Identity, until: number): void {
    if (this.max === 0) return;
    this.entries.delete(digest);
    this.entries.set(digest, { identity, until });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }
  get size(): number {
    return this.entries.size;
  }
}

/** Everything the verifier needs, resolved from the config and the key files. */
export interface JwtVerifierSettings {
  algorithms: readonly string[];
  secrets: readonly KeyObject[];
  publicKeys: readonly StaticKey[];
  jwks: JwksKeys | undefined;
  issuer: string | string[] | undefined;
  audience: string | string[] | undefined;
  leewayMs: number;
  requireExp: boolean;
  header: string | undefined;
  cookie: string | undefined;
  rolesClaim: string;
  permissionsClaim: string;
  cacheSize: number;
}

/** Verifies bearer tokens against the configured secrets, public keys and JWKS. */
export class JwtVerifier implements TokenVerifier {
  readonly cookie: string | undefined;
  readonly header: string | undefined;
  private readonly settings: JwtVerifierSettings;
  private readonly allowed: ReadonlySet<string>;
  private readonly cache: VerifiedTokenCache;
  private readonly options: JWTVerifyOptions;
  private readonly log: Logger;

  constructor(settings: JwtVerifierSettings, log: Logger) {
    this.settings = settings;
    this.cookie = settings.cookie;
    this.header = settings.header;
    this.allowed = new Set(settings.algorithms);
    this.cache = new VerifiedTokenCache(settings.cacheSize);
    this.log = log;
    this.options = {
      algorithms: [...settings.algorithms],
      issuer: settings.issuer,
      audience: settings.audience,
      clockTolerance: settings.leewayMs / 1000,
      requiredClaims: settings.requireExp ? ['exp'] : [],
      // No extension is understood: a token marking any header parameter critical is refused (RFC 7515 4.1.11).
      crit: {},
    };
  }

  /** Tokens remembered now (for tests and the admin dump). */
  get cachedTokens(): number {
    return this.cache.size;
  }

  async verify(token: string): Promise<Identity> {
    if (token.length > MAX_TOKEN_LENGTH) throw invalid('the token is too large');
    const digest = createHash('sha256').update(token).digest('base64url');
    const now = Date.now();
    const cached = this.cache.get(digest, now);
    if (cached) return cached;

    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw invalid('the token is malformed');
    }
    if (typeof alg !== 'string' || !this.allowed.has(alg)) throw invalid('the token is signed with an algorithm that is not accepted');

    let payload: JWTPayload;
    try {
      payload = alg.startsWith('HS') ? await this.verifyWith(token, this.settings.secrets) : await this.verifyAsymmetric(token, alg);
    } catch (err) {
      const rejected = rejection(err);
      this.log.debug({ event: 'token_rejected', reason: rejected.message }, 'token rejected');
      throw rejected;
    }
    const identity = this.identityOf(payload);
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 + this.settings.leewayMs : Infinity;
    this.cache.set(digest, identity, Math.min(exp, now + MAX_CACHE_LIFETIME_MS));
    return identity;
  }

  /** Tries each candidate key; only a signature mismatch moves on to the next (key rotation). */
  private async verifyWith(token: string, keys: readonly KeyObject[]): Promise<JWTPayload> {
    let last: unknown = new errors.JWSSignatureVerificationFailed();
    for (const key of keys) {
      try {
        return (await jwtVerify(token, key, this.options)).payload;
      } catch (err) {
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err;
        last = err;
      }
    }
    throw last;
  }

  private async verifyAsymmetric(token: string, alg: string): Promise<JWTPayload> {
    const keys = this.settings.publicKeys.filter((k) => keyFits(alg, k.key)).map((k) => k.key);
    const jwks = this.settings.jwks;
    if (!jwks) return this.verifyWith(token, keys);
    if (keys.length > 0) {
      try {
        return await this.verifyWith(token, keys);
      } catch (err) {
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err;
      }
    }
    try {
      return (await jwtVerify(token, jwks.resolve, this.options)).payload;
    } catch (err) {
      if (err instanceof errors.JWKSMultipleMatchingKeys) return this.verifyEachJwk(token, err);
      throw err;
    }
  }

  /** Several JWKS keys fit a token without a `kid`: any of them may have signed it. */
  private async verifyEachJwk(token: string, err: InstanceType<typeof errors.JWKSMultipleMatchingKeys>): Promise<JWTPayload> {
    for await (const key of err) {
      try {
        return (await jwtVerify(token, key, this.options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }

  private identityOf(payload: JWTPayload): Identity {
    if (typeof payload.sub !== 'string' || payload.sub === '') throw invalid('the token has no subject (sub)');
    return Object.freeze({
      subject: payload.sub,
      roles: Object.freeze(claimList(claimAt(payload, this.settings.rolesClaim))),
      permissions: Object.freeze(claimList(claimAt(payload, this.settings.permissionsClaim))),
    });
  }
}

/** What building a verifier produced: the verifier, and findings worth a warning. */
export interface BuiltVerifier {
  verifier: JwtVerifier;
  warnings: string[];
}

/**
 * Builds the verifier from `auth.jwt`: reads key files, imports keys and
 * checks they fit the algorithms. Throws ConfigError naming the field.
 */
export async function createJwtVerifier(jwt: JwtConfig, log: Logger): Promise<BuiltVerifier> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const algorithms = jwtAlgorithms(jwt);
  const secretTexts = [...(jwt.secret !== undefined ? [jwt.secret] : []), ...(jwt.secrets ?? [])];
  const secrets = secretTexts.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
  // Secrets shorter than the hash never get here: config validation refuses them (config/key-strength.ts).

  const publicKeys: StaticKey[] = [];
  if (jwt.public_key !== undefined) {
    const parsed = parsePublicKeys(jwt.public_key, 'auth.jwt.public_key', algorithms);
    publicKeys.push(...parsed.keys);
    problems.push(...parsed.problems);
  }
  if (jwt.public_key_file !== undefined) {
    let text: string | undefined;
    try {
      text = await readFile(jwt.public_key_file, 'utf8');
    } catch (err) {
      problems.push(`auth.jwt.public_key_file: cannot read ${jwt.public_key_file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text !== undefined) {
      const parsed = parsePublicKeys(text, 'auth.jwt.public_key_file', algorithms);
      publicKeys.push(...parsed.keys);
      problems.push(...parsed.problems);
    }
  }

  let jwks: JwksKeys | undefined;
  if (jwt.jwks_url !== undefined) {
    const url = new URL(jwt.jwks_url);
    if (url.protocol === 'http:' && !['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname)) {
      warnings.push(`auth.jwt.jwks_url uses plain http: whoever can change the answer on the way can make the gateway accept their tokens`);
    }
    const remote = createRemoteJWKSet(url, {
      cooldownDuration: parseDuration(jwt.jwks_cooldown ?? '30s') ?? 30_000,
      cacheMaxAge: parseDuration(jwt.jwks_max_age ?? '10m') ?? 600_000,
      timeoutDuration: parseDuration(jwt.jwks_timeout ?? '5s') ?? 5_000,
      headers: { 'user-agent': 'switchyard-dataplane' },
    });
    jwks = new JwksKeys(remote, log);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (jwt.issuer === undefined) warnings.push('auth.jwt.issuer is not set: tokens from any issuer that holds the key are accepted');

  const verifier = new JwtVerifier(
    {
      algorithms,
      secrets,
      publicKeys,
      jwks,
      issuer: jwt.issuer,
      audience: jwt.audience,
      leewayMs: parseDuration(jwt.leeway ?? 0) ?? 0,
      requireExp: jwt.require_exp ?? true,
      header: jwt.header,
      cookie: jwt.cookie,
      rolesClaim: jwt.roles_claim ?? 'roles',
      permissionsClaim: jwt.permissions_claim ?? 'permissions',
      cacheSize: jwt.cache_size ?? 10_000,
    },
    log,
  );
  if (jwks) {
    // Fetch once now so the first requests do not wait; a failure is not fatal, the keys are fetched again on demand.
    if (!(await jwks.refresh())) warnings.push('auth.jwt.jwks_url: the first fetch failed; the keys are fetched again when a token needs them');
  }
  return { verifier, warnings };
}
