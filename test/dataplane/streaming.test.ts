import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream, type TestUpstream } from '../support/upstreams.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';

const MiB = 1024 * 1024;

/** Resolves when `check` holds, polling; the test fails by timeout otherwise. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

describe('streaming', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let firstUploadChunkSeen = false;
  let uploadHash = '';
  let uploadBytes = 0;
  let releaseDownload: () => void = () => undefined;

  beforeAll(async () => {
    up = await startUpstream(
      (req, res) => {
        if (req.url === '/upload') {
          const hash = createHash('sha256');
          req.on('data', (c: Buffer) => {
            firstUploadChunkSeen = true;
            uploadBytes += c.length;
            hash.update(c);
          });
          req.on('end', () => {
            uploadHash = hash.digest('hex');
            res.end('stored');
          });
          return;
        }
        // Download: the first chunk goes out, the rest only once the client has seen it.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(64 * 1024, 1));
        const rest = new Promise<void>((r) => (releaseDownload = r));
        void rest.then(async () => {
          const chunk = Buffer.alloc(MiB, 2);
          for (let i = 0; i < 64; i++) {
            if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
          }
          res.end();
        });
      },
      { raw: true },
    );
    gw = await startGateway({
      // The upload is larger than the default body limit (10MiB).
      server: { limits: { max_body_size: '128MiB' } },
      routes: [
        { path: '/upload', methods: ['POST'], upstream: 'u' },
        { path: '/download', methods: ['GET'], upstream: 'u' },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  it('streams a large request body to the upstream before the client has finished sending it', async () => {
    const body = new PassThrough();
    const expected = createHash('sha256');
    const send = (b: Buffer): void => {
      expected.update(b);
      body.write(b);
    };
    const pending = request(`${gw.url}/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    send(Buffer.alloc(64 * 1024, 7));
    // If the gateway buffered the whole body, the upstream would never see this chunk and the test would time out.
    await until(() => firstUploadChunkSeen);
    for (let i = 0; i < 64; i++) {
      const chunk = Buffer.alloc(MiB, i);
      expected.update(chunk);
      if (!body.write(chunk)) await new Promise((r) => body.once('drain', r));
    }
    body.end();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('stored');
    expect(uploadBytes).toBe(64 * MiB + 64 * 1024);
    expect(uploadHash).toBe(expected.digest('hex'));
  });

  it('streams a large response body to the client before the upstream has finished sending it', async () => {
    const res = await request(`${gw.url}/download`);
    expect(res.statusCode).toBe(200);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of res.body) {
      if (bytes === 0) releaseDownload();
      bytes += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    expect(bytes).toBe(64 * 1024 + 64 * MiB);
    const expected = createHash('sha256').update(Buffer.alloc(64 * 1024, 1));
    for (let i = 0; i < 64; i++) expected.update(Buffer.alloc(MiB, 2));
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('cancels the upstream request when the client goes away', async () => {
    let upstreamClosed = false;
    const hanging = await startUpstream(
      (req, res) => {
        res.writeHead(200);
        res.write('start');
        req.socket.on('close', () => (upstreamClosed = true));
      },
      { raw: true },
    );
    const g = await startGateway({ routes: [{ path: '/hang', upstream: 'h' }], upstreams: { h: { discovery: { type: 'Static', endpoints: [hanging.url] } } } });
    try {
      const controller = new AbortController();
      const res = await request(`${g.url}/hang`, { signal: controller.signal });
      expect(res.statusCode).toBe(200);
      controller.abort();
      await until(() => upstreamClosed);
      await until(() => g.gw.inFlight === 0);
    } finally {
      await g.stop();
      await hanging.close();
    }
  });
});
