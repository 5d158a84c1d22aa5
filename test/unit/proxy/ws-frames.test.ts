/** Frame boundaries of a WebSocket stream, fed in every possible split, and the Close frames the gateway writes. */
import { describe, expect, it } from 'vitest';
import { closeFrame, FrameCursor, OPCODE_CLOSE } from '../../../dataplane/src/proxy/ws-frames.ts';

/** One frame as RFC 6455 section 5.2 lays it out (the payload is not masked here; the cursor never reads it). */
function frame(opcode: number, length: number, masked: boolean): Buffer {
  const len7 = length < 126 ? length : length < 65536 ? 126 : 127;
  const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  const head = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | len7;
  if (len7 === 126) head.writeUInt16BE(length, 2);
  if (len7 === 127) head.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([head, Buffer.alloc(length, 0x5a)]);
}

describe('FrameCursor', () => {
  const frames = [frame(0x1, 5, false), frame(0x2, 0, true), frame(0x2, 300, true), frame(0x9, 0, false), frame(0x2, 70_000, false), frame(0x1, 125, true)];
  const stream = Buffer.concat(frames);
  const ends = frames.reduce<number[]>((acc, f) => [...acc, (acc.at(-1) ?? 0) + f.length], []);

  it('finds every frame end whatever the chunking', () => {
    for (const size of [1, 2, 3, 7, 13, 126, 1000, stream.length]) {
      const cursor = new FrameCursor();
      const found: number[] = [];
      let offset = 0;
      while (offset < stream.length) {
        let chunk = stream.subarray(offset, Math.min(stream.length, offset + size));
        let base = offset;
        offset += chunk.length;
        // Stop at each boundary in the chunk, as the tunnel does when it must put a frame between two.
        for (;;) {
          const end = cursor.advance(chunk, true);
          if (end === -1) break;
          found.push(base + end);
          base += end;
          chunk = chunk.subarray(end);
        }
      }
      expect(found, `chunks of ${size}`).toEqual(ends);
      expect(cursor.atBoundary).toBe(true);
      expect(cursor.takeOpcodes()).toEqual([0x1, 0x2, 0x2, 0x9, 0x2, 0x1]);
    }
  });

  it('is not at a boundary inside a header or a payload', () => {
    const cursor = new FrameCursor();
    cursor.advance(stream.subarray(0, 1));
    expect(cursor.atBoundary).toBe(false);
    cursor.advance(stream.subarray(1, 4));
    expect(cursor.atBoundary).toBe(false);
    cursor.advance(stream.subarray(4, 7));
    expect(cursor.atBoundary).toBe(true);
  });
});

describe('closeFrame', () => {
  it('writes an unmasked Close with code and reason for a client', () => {
    const f = closeFrame(1001, 'going away', false);
    expect(f[0]).toBe(0x80 | OPCODE_CLOSE);
    expect(f[1]).toBe(12);
    expect(f.readUInt16BE(2)).toBe(1001);
    expect(f.subarray(4).toString()).toBe('going away');
  });

  it('masks a Close for an upstream, and the cursor reads it as one frame', () => {
    const f = closeFrame(1001, 'x'.repeat(200), true);
    expect(f[1]).toBe(0x80 | 125);
    const key = f.subarray(2, 6);
    const payload = Buffer.from(f.subarray(6).map((b, i) => b ^ (key[i % 4] as number)));
    expect(payload.readUInt16BE(0)).toBe(1001);
    const cursor = new FrameCursor();
    expect(cursor.advance(f, true)).toBe(f.length);
    expect(cursor.takeOpcodes()).toEqual([OPCODE_CLOSE]);
  });
});
