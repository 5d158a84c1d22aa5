/**
 * Just enough of WebSocket framing (RFC 6455 section 5.2) for a gateway that
 * otherwise passes a tunnel's bytes untouched: where the frames of a stream
 * end, so that a Close frame of the gateway's own can be put between two
 * frames (on drain and on idle timeout) without corrupting either peer's
 * stream. Payloads are never read or unmasked. Pure; no sockets.
 */
import { randomBytes } from 'node:crypto';

/** The Close opcode. */
export const OPCODE_CLOSE = 0x8;

/** Follows the frame boundaries of one direction of a WebSocket stream. */
export class FrameCursor {
  private readonly header = Buffer.alloc(14);
  /** Header bytes read of the frame being parsed; 0 between frames and inside a payload. */
  private have = 0;
  /** Header length of the frame being parsed, known once its second byte is in. */
  private need = 2;
  /** Payload bytes still to come of the current frame. */
  private payload = 0;
  /** Opcodes of the frames whose header was read, since the last `takeOpcodes`. */
  private opcodes: number[] = [];

  /** True between two frames, where a frame of the gateway's own may go. */
  get atBoundary(): boolean {
    return this.have === 0 && this.payload === 0;
  }

  /**
   * Reads `chunk` on from where the last one ended. With `stop`, returns the
   * offset just past the first frame that ends in it (the caller forwards that
   * much and no more); otherwise, or when no frame ends in it, -1.
   */
  advance(chunk: Uint8Array, stop = false): number {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.payload > 0) {
        const take = Math.min(this.payload, n - i);
        this.payload -= take;
        i += take;
        if (this.payload === 0 && stop) return i;
        continue;
      }
      this.header[this.have++] = chunk[i++] as number;
      if (this.have === 2) {
        const len7 = (this.header[1] as number) & 0x7f;
        this.need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((this.header[1] as number) & 0x80 ? 4 : 0);
      }
      if (this.have < 2 || this.have < this.need) continue;
      const h = this.header;
      const len7 = (h[1] as number) & 0x7f;
      // A length above 2^53 cannot be followed exactly; no peer sends one, and the tunnel ends long before.
      this.payload = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? Number(h.readBigUInt64BE(2)) : len7;
      this.opcodes.push((h[0] as number) & 0x0f);
      this.have = 0;
      this.need = 2;
      if (this.payload === 0 && stop) return i;
    }
    return -1;
  }

  /** The opcodes of the frames that started since the last call. */
  takeOpcodes(): number[] {
    const out = this.opcodes;
    this.opcodes = [];
    return out;
  }
}

/**
 * A Close frame with a status code and a short reason (at most 123 bytes of
 * UTF-8, as control frames carry 125 bytes). Frames a client sends are masked
 * (section 5.3), so one for the upstream is `masked`.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > 123) text = text.subarray(0, 123);
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  if (!masked) return Buffer.concat([Buffer.from([0x80 | OPCODE_CLOSE, payload.length]), payload]);
  const key = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (key[i % 4] as number);
  return Buffer.concat([Buffer.from([0x80 | OPCODE_CLOSE, 0x80 | payload.length]), key, payload]);
}
