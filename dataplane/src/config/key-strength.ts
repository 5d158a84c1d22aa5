/**
 * The weakest keys the gateway accepts for verifying tokens.
 *
 * - HMAC secrets at least as long as the hash: RFC 7518 section 3.2 requires
 *   a key of the same size as the hash output or larger, 32 bytes for HS256,
 *   48 for HS384 and 64 for HS512, counted as the secret's UTF-8 bytes.
 * - RSA keys of 2048 bits or more (RFC 7518 section 3.3; NIST SP 800-57
 *   retired 1024-bit RSA in 2013).
 *
 * A shorter key is refused where it is configured (config validation, so that
 * start, reload and `--check` all say so), and a JWKS key that is too weak is
 * skipped (pipeline/jwt.ts).
 */
import { createPublicKey } from 'node:crypto';

/** RFC 7518 section 3.2: the least number of secret bytes for each HMAC algorithm. */
export const HMAC_MIN_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };

/** The least RSA modulus length, in bits. */
export const MIN_RSA_BITS = 2048;

/** Why `secret` is too short for the strongest HMAC algorithm in `algorithms`, or undefined. The secret itself is never quoted. */
export function secretProblem(secret: string, algorithms: readonly string[]): string | undefined {
  let needed = 0;
  let alg = '';
  for (const a of algorithms) {
    const min = HMAC_MIN_BYTES[a] ?? 0;
    if (min > needed) [needed, alg] = [min, a];
  }
  const bytes = Buffer.byteLength(secret, 'utf8');
  if (needed === 0 || bytes === 0 || bytes >= needed) return undefined;
  return `the secret is ${bytes} bytes; ${alg} needs at least ${needed} bytes (RFC 7518 section 3.2). Generate one with: openssl rand -base64 ${needed}`;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/**
 * RSA public keys or certificates shorter than MIN_RSA_BITS in a PEM text, one
 * problem per key. Blocks that are not usable public keys are left to the
 * verifier, which names those problems at start.
 */
export function weakRsaKeyProblems(pem: string): string[] {
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  const problems: string[] = [];
  blocks.forEach((m, i) => {
    if ((m[1] as string).includes('PRIVATE')) return;
    let bits: number | undefined;
    try {
      const key = createPublicKey(m[0]);
      if (key.asymmetricKeyType?.startsWith('rsa')) bits = key.asymmetricKeyDetails?.modulusLength;
    } catch {
      return;
    }
    if (bits !== undefined && bits < MIN_RSA_BITS) {
      problems.push(`${blocks.length > 1 ? `PEM block ${i + 1}: ` : ''}a ${bits}-bit RSA key is too weak; RSA keys need at least ${MIN_RSA_BITS} bits`);
    }
  });
  return problems;
}

/** The bit length of an RSA modulus given as a JWK `n` (base64url, big-endian). */
export function rsaModulusBits(n: string): number {
  const bytes = Buffer.from(n, 'base64url');
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i] as number));
}
