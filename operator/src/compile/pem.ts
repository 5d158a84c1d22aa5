/** Checks of PEM data read from Secrets and ConfigMaps, so that compile can name what is wrong before a data plane meets it. */
import { createPrivateKey, X509Certificate } from 'node:crypto';

/** Why a certificate and key cannot be used, or undefined. */
export function certificateProblem(certificatePem: string | undefined, privateKeyPem: string | undefined): string | undefined {
  if (!certificatePem || !privateKeyPem) return 'it needs both tls.crt and tls.key';
  try {
    const cert = new X509Certificate(certificatePem);
    if (!cert.checkPrivateKey(createPrivateKey(privateKeyPem))) return 'tls.key does not belong to the certificate in tls.crt';
  } catch (err) {
    return `it does not hold a PEM certificate and key (${(err as Error).message})`;
  }
  return undefined;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Why a PEM bundle of CA certificates cannot be used, or undefined: it must hold at least one certificate, and each must parse. */
export function caBundleProblem(pem: string): string | undefined {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return 'it holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${i + 1} of ${blocks.length} does not parse (${(err as Error).message})`;
    }
  }
  return undefined;
}
