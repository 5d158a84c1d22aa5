/**
 * Steady, bounded traffic through data planes while a test breaks something:
 * a fixed request rate spread over the targets, a cap on the number of requests
 * and on the time, and every failure kept with when and where it happened.
 */
import { Agent, request } from 'undici';

/** What a load run did. */
export interface LoadResult {
  sent: number;
  failed: number;
  /** Each failure: target, status or error, and milliseconds since the start. */
  failures: string[];
}

/** A running load; stop() waits for requests in flight and returns the counts. */
export interface Load {
  readonly sent: number;
  readonly failed: number;
  stop(): Promise<LoadResult>;
}

/** Options of steadyLoad(). */
export interface LoadOptions {
  /** Requests per second over all targets (default 40). */
  rate?: number;
  /** Stop after this many requests (default 20 000). */
  maxRequests?: number;
  /** Stop after this long (default 5 minutes). */
  maxMs?: number;
  /** Whether an answer counts as served (default: status 200). */
  ok?: (status: number) => boolean;
}

/** Sends GET requests to `urls` in turn at a steady rate until stopped or a bound is reached. */
export function steadyLoad(urls: readonly string[], options: LoadOptions = {}): Load {
  const rate = options.rate ?? 40;
  const maxRequests = options.maxRequests ?? 20_000;
  const maxMs = options.maxMs ?? 300_000;
  const ok = options.ok ?? ((status: number) => status === 200);
  const agent = new Agent({ connections: 8, keepAliveTimeout: 10_000 });
  const started = Date.now();
  const failures: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let next = 0;
  let stopped = false;

  const one = async (url: string): Promise<void> => {
    try {
      const res = await request(url, { dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
      const body = await res.body.text();
      if (!ok(res.statusCode)) {
        failures.push(`${url} → ${res.statusCode} ${body.slice(0, 160)} at ${Date.now() - started} ms`);
      }
    } catch (err) {
      failures.push(`${url} → ${(err as Error).message} at ${Date.now() - started} ms`);
    }
  };

  const timer = setInterval(() => {
    if (stopped) return;
    if (sent >= maxRequests || Date.now() - started >= maxMs) {
      stopped = true;
      return;
    }
    const url = urls[next++ % urls.length] as string;
    sent++;
    const p = one(url).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, 1000 / rate);

  return {
    get sent() {
      return sent;
    },
    get failed() {
      return failures.length;
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
      await agent.close();
      return { sent, failed: failures.length, failures: [...failures] };
    },
  };
}

/** Prints one line a reader of the test log can compare across runs. */
export function report(label: string, result: LoadResult): void {
  console.log(`${label}: ${result.sent} requests sent, ${result.failed} failed${result.failed > 0 ? `; first failures:\n  ${result.failures.slice(0, 5).join('\n  ')}` : ''}`);
}
