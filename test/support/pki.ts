/** Certificates made with openssl for tests: a CA, and certificates it signs. */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** File paths of a certificate and its key, and their PEM. */
export interface Pair {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

const read = (cert: string, key: string): Pair => ({ cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') });

/** A self-signed CA (P-256) named `name`, written to `dir`. */
export function makeCa(dir: string, name: string): Pair {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return read(cert, key);
}

/** A certificate for `name` signed by `ca`, with the extensions `ext` (an openssl extfile), written to `dir`. */
export function issue(dir: string, ca: Pair, name: string, ext: string): Pair {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1', '-extfile', extFile, '-out', cert], { stdio: 'ignore' });
  return read(cert, key);
}
