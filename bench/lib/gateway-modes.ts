/**
 * The gateway configurations the data plane benchmark compares, and the
 * tokens wrk sends. Every mode routes everything (Prefix `/`) to the one
 * upstream; they differ only in what runs per request.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';

/** One gateway mode: its config (without `server`) and the token wrk must send, if any. */
export interface GatewayMode {
  /** Short id used in results. */
  id: string;
  label: string;
  config: Record<string, unknown>;
  bearer: string | undefined;
  /** Whether stdout (JSON log lines, the access log) goes to a file rather than /dev/null. */
  logToFile: boolean;
}

const ISSUER = 'auth-service';
const AUDIENCE = 'api-gateway';
/** Only for the benchmark's throwaway gateways on 127.0.0.1. */
const HS_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';

async function mint(alg: 'HS256' | 'RS256', key: KeyObject | Uint8Array): Promise<string> {
  return new SignJWT({ roles: ['user'], permissions: ['users:read'] })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setSubject('bench-user-1')
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(key);
}

function upstreams(origin: string): Record<string, unknown> {
  return { u: { discovery: { type: 'Static', endpoints: [origin] } } };
}

const QUIET = { logging: { level: 'warn', access_log: false }, metrics: { prometheus_enabled: false } };

/** The modes, all pointed at `upstreamOrigin`. */
export async function gatewayModes(upstreamOrigin: string): Promise<GatewayMode[]> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const secret = new TextEncoder().encode(HS_SECRET);
  const hsToken = await mint('HS256', secret);
  const rsToken = await mint('RS256', privateKey);
  const open = { path: '/', path_type: 'Prefix', upstream: 'u' };
  const guarded = { ...open, auth_required: true, required_roles: ['user'] };
  const hsJwt = { secret: HS_SECRET, algorithm: 'HS256', issuer: ISSUER, audience: AUDIENCE };
  const rsJwt = { public_key: publicPem, algorithm: 'RS256', issuer: ISSUER, audience: AUDIENCE };
  return [
    {
      id: 'gateway-plain',
      label: 'gateway: routing',
      config: { routes: [open], upstreams: upstreams(upstreamOrigin), observability: QUIET },
      bearer: undefined,
      logToFile: false,
    },
    {
      id: 'gateway-jwt-hs256',
      label: 'gateway: + JWT HS256, roles, identity headers',
      config: { routes: [guarded], upstreams: upstreams(upstreamOrigin), auth: { jwt: hsJwt }, observability: QUIET },
      bearer: hsToken,
      logToFile: false,
    },
    {
      id: 'gateway-jwt-rs256',
      label: 'gateway: + JWT RS256, roles, identity headers',
      config: { routes: [guarded], upstreams: upstreams(upstreamOrigin), auth: { jwt: rsJwt }, observability: QUIET },
      bearer: rsToken,
      logToFile: false,
    },
    {
      // The verified-token cache makes a repeated token cost one SHA-256; this mode shows a signature check on every request.
      id: 'gateway-jwt-rs256-nocache',
      label: 'gateway: + JWT RS256, token cache off',
      config: { routes: [guarded], upstreams: upstreams(upstreamOrigin), auth: { jwt: { ...rsJwt, cache_size: 0 } }, observability: QUIET },
      bearer: rsToken,
      logToFile: false,
    },
    {
      id: 'gateway-full',
      label: 'gateway: + JWT HS256, metrics, access log, rate limit',
      config: {
        routes: [guarded],
        upstreams: upstreams(upstreamOrigin),
        auth: { jwt: hsJwt },
        // High enough never to refuse: the point is the cost of counting, not of refusing.
        middleware: { rate_limiting: { default_limit: 1_000_000_000, window: '1m', storage: { type: 'Memory' } } },
        observability: { logging: { level: 'info', access_log: true }, metrics: { prometheus_enabled: true } },
      },
      bearer: hsToken,
      logToFile: true,
    },
  ];
}
