/**
 * Tables from the operator: subscribe to its NDJSON stream, apply each table
 * through the same TableHolder a config file uses, acknowledge the result.
 *
 * Static stability: losing the operator changes nothing that is being served.
 * The client reconnects with exponential backoff and full jitter (so a fleet
 * does not reconnect in step), trying each configured URL in turn. With a
 * state directory, every applied table is written to disk first, and a
 * restart during an operator outage boots from it.
 *
 * Tables never go back in time: each carries the term of the leadership that
 * sent it (the Lease's UID and transition count), and a table from an earlier
 * term of the same Lease than the one being served comes from a deposed leader.
 * It is refused, and the data plane looks for the current leader.
 *
 * Deltas (stream protocol 2, asked for with `protocol=2`; an operator that does
 * not know it sends whole tables, which are taken as before): a delta names the
 * version it applies to. One that does not apply to the live table (a message
 * was lost, or came out of order) is a gap: the data plane subscribes again at
 * once, and a new stream starts with the whole table. Messages are numbered
 * (`seq` within the operator's `epoch`); one numbered below a message already
 * taken from the same epoch is ignored, so an older version is never applied.
 * The state directory always holds the whole table the deltas led to.
 */
import { mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import type { Logger } from '../observability/logger.ts';
import type { TableHolder } from './holder.ts';
import { DELTA_PROTOCOL } from '../contract/delta.ts';

/** Options of the operator client. */
export interface OperatorSourceOptions {
  /** Operator base URLs, tried in turn. */
  urls: string[];
  token: string;
  /** PEM CAs that the operator's certificate (https URLs) must chain to; absent: the system roots. */
  ca?: string | undefined;
  /** The name the operator's certificate must carry, when the URLs name it otherwise (an address). */
  serverName?: string | undefined;
  /** This data plane's name in the fleet (the pod name). */
  id: string;
  holder: TableHolder;
  log: Logger;
  stateDir?: string;
  /** Reconnect if nothing (table or heartbeat) arrives for this long. */
  idleTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /**
   * Answers the operator's `explain` messages (kubectl switchyard explain):
   * the request as the admin POST /explain takes it, and the namespace whose
   * routes the asker may see. Without it such messages are ignored.
   */
  explain?: (request: unknown, namespace: string | undefined) => Promise<unknown>;
}

const STATE_FILE = 'table.json';

/** The leadership that sent a table: the operator's fencing token. */
export interface LeaderTerm {
  lease: string;
  term: number;
  identity?: string;
}

function positionOf(message: { seq?: unknown; epoch?: unknown }): { epoch: string; seq: number } | undefined {
  return typeof message.epoch === 'string' && typeof message.seq === 'number' && Number.isInteger(message.seq) ? { epoch: message.epoch, seq: message.seq } : undefined;
}

function leaderOf(value: unknown): LeaderTerm | undefined {
  const v = value as Partial<LeaderTerm> | null | undefined;
  if (typeof v?.lease !== 'string' || typeof v.term !== 'number' || !Number.isInteger(v.term)) return undefined;
  return { lease: v.lease, term: v.term, ...(typeof v.identity === 'string' ? { identity: v.identity } : {}) };
}

/** What the state directory keeps: the table and its leader. Its mtime is when the operator last said the table is current. */
interface SavedState {
  table: unknown;
  leader?: LeaderTerm;
}

/** Loads the last applied table from a state directory, if there is one. */
function readState(stateDir: string): { state: SavedState; currentAt: number } | undefined {
  const file = path.join(stateDir, STATE_FILE);
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> | null;
    // Data planes before the leader term wrote the table alone.
    const state: SavedState = parsed !== null && 'table' in parsed && !('routes' in parsed) ? { table: parsed.table, leader: leaderOf(parsed.leader) } : { table: parsed };
    return { state, currentAt: statSync(file).mtimeMs };
  } catch {
    return undefined;
  }
}

/** Writes the state atomically: a crash leaves the old file or the new one, never half of one. */
function writeState(stateDir: string, state: SavedState): void {
  mkdirSync(stateDir, { recursive: true });
  const tmp = path.join(stateDir, `.${STATE_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, path.join(stateDir, STATE_FILE));
}

/** Records, in the file's mtime, that the operator said the saved table is still current. */
function touchState(stateDir: string): void {
  const now = new Date();
  utimesSync(path.join(stateDir, STATE_FILE), now, now);
}

/** A table from a leadership older than the one being served. */
class DeposedLeaderError extends Error {}

/** A delta that does not apply to the live table: a new stream brings the whole table. */
class GapError extends Error {}

/** Subscribes to the operator and keeps the holder's table current. */
export class OperatorSource {
  private readonly options: OperatorSourceOptions;
  private readonly agent: Agent;
  private stopped = false;
  private abort: AbortController | undefined;
  private attempt = 0;
  private urlIndex = 0;
  private loop: Promise<void> | undefined;
  /** The leadership the live table came from, if the operator elects one. */
  private leader: LeaderTerm | undefined;
  /** Connected to an operator right now. */
  connected = false;
  /** The last message taken: its operator's epoch and number. */
  private position: { epoch: string; seq: number } | undefined;
  /** What arrived so far: whole tables, deltas applied, resyncs after a gap, and messages ignored as older than the live table. */
  readonly counts = { tables: 0, deltas: 0, resyncs: 0, stale: 0 };
  /** The last version this data plane refused: the heartbeats that name it need no resync. */
  private rejected: string | undefined;
  /** A state write waiting for the event loop (writes are coalesced and never hold up an acknowledgement). */
  private pendingState: (() => void) | undefined;

  constructor(options: OperatorSourceOptions) {
    this.options = options;
    this.agent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 10_000, bodyTimeout: 0, connect: { timeout: 5_000, ...(options.ca !== undefined ? { ca: options.ca } : {}), ...(options.serverName !== undefined ? { servername: options.serverName } : {}) } });
  }

  /** Applies the state directory's table, if any, then starts the subscription loop. */
  start(): void {
    const { stateDir, holder, log } = this.options;
    if (stateDir) {
      const saved = readState(stateDir);
      if (saved !== undefined) {
        const result = holder.apply(saved.state.table, `${stateDir}/${STATE_FILE}`);
        if (result.applied) {
          this.leader = saved.state.leader;
          // The table is as old as the operator's last word on it, not as this boot.
          holder.markCurrent(saved.currentAt);
        }
        log.info({ event: 'state_table_loaded', result, leader: saved.state.leader ?? null, currentAt: new Date(saved.currentAt).toISOString() }, 'booted from the last applied table');
      }
    }
    this.loop = this.run();
  }

  /** Stops subscribing; the last table keeps serving. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
    this.flushState();
    await this.agent.close();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const url = this.options.urls[this.urlIndex % this.options.urls.length] as string;
      try {
        await this.subscribe(url);
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof GapError) {
          // Not the operator's fault: subscribe again at once, to the same URL, for the whole table.
          this.counts.resyncs++;
          this.options.log.warn({ event: 'table_resync', operator: url, reason: err.message, serving: this.options.holder.current?.version ?? null }, 'a delta does not apply to the live table; fetching the whole table');
          this.connected = false;
          this.abort?.abort();
          continue;
        }
        if (err instanceof DeposedLeaderError) this.options.log.warn({ event: 'operator_deposed', operator: url, error: err.message, serving: this.options.holder.current?.version ?? null }, 'refused a table from a deposed leader; looking for the current one');
        else this.options.log.warn({ event: 'operator_unreachable', operator: url, error: (err as Error).message, serving: this.options.holder.current?.version ?? null }, 'lost the operator; serving the last table');
      }
      this.connected = false;
      if (this.stopped) break;
      this.urlIndex++;
      const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 250, maxMs: 10_000 };
      const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.attempt, 16));
      this.attempt++;
      await new Promise((r) => setTimeout(r, Math.random() * ceiling));
    }
  }

  private async subscribe(base: string): Promise<void> {
    const { token, id, log } = this.options;
    const applied = this.options.holder.current?.version;
    const target = new URL('/v1/tables/watch', base);
    target.searchParams.set('dataplane', id);
    target.searchParams.set('protocol', String(DELTA_PROTOCOL));
    if (applied) target.searchParams.set('applied', applied);
    if (this.leader) {
      target.searchParams.set('lease', this.leader.lease);
      target.searchParams.set('term', String(this.leader.term));
    }
    this.abort = new AbortController();
    const res = await request(target, { dispatcher: this.agent, headers: { authorization: `Bearer ${token}` }, signal: this.abort.signal });
    if (res.statusCode !== 200) {
      const text = (await res.body.text()).slice(0, 200);
      throw new Error(`operator answered ${res.statusCode}: ${text.trim()}`);
    }
    this.connected = true;
    log.info({ event: 'operator_connected', operator: base }, 'subscribed to the operator');
    const idleMs = this.options.idleTimeoutMs ?? 35_000;
    let idle = setTimeout(() => this.abort?.abort(new Error('no heartbeat from the operator')), idleMs);
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        clearTimeout(idle);
        idle = setTimeout(() => this.abort?.abort(new Error('no heartbeat from the operator')), idleMs);
        this.attempt = 0;
        buffer += (chunk as Buffer).toString('utf8');
        let nl = buffer.indexOf('\n');
        while (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.trim() !== '') await this.onMessage(base, line);
          nl = buffer.indexOf('\n');
        }
      }
    } finally {
      clearTimeout(idle);
    }
    throw new Error('the operator closed the stream');
  }

  private async onMessage(base: string, line: string): Promise<void> {
    let message: { type?: unknown; table?: unknown; version?: unknown; leader?: unknown; seq?: unknown; epoch?: unknown };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      this.options.log.warn({ event: 'operator_bad_message' }, 'ignored a line from the operator that is not JSON');
      return;
    }
    const { holder, stateDir, log } = this.options;
    if (message.type === 'explain') {
      // Answered beside the stream, which goes on reading.
      void this.answerExplain(base, message as { id?: unknown; request?: unknown; namespace?: unknown });
      return;
    }
    if (message.type === 'heartbeat') {
      if (typeof message.version === 'string' && message.version === holder.current?.version) {
        holder.markCurrent();
        this.saveState(() => (stateDir ? touchState(stateDir) : undefined));
      } else if (typeof message.version === 'string' && message.version !== this.rejected && holder.current !== undefined) {
        // The operator serves a version this data plane neither has nor refused: a message was lost.
        throw new GapError(`the operator serves version ${message.version}, this data plane ${holder.current.version}`);
      }
      return;
    }
    if (message.type !== 'table' && message.type !== 'delta') return;
    const leader = leaderOf(message.leader);
    const mine = this.leader;
    if (leader && mine && leader.lease === mine.lease && leader.term < mine.term) {
      throw new DeposedLeaderError(`its table comes from leadership term ${leader.term}${leader.identity ? ` (${leader.identity})` : ''}, the table being served from term ${mine.term}${mine.identity ? ` (${mine.identity})` : ''}`);
    }
    const position = positionOf(message);
    if (position && this.position && position.epoch === this.position.epoch && position.seq < this.position.seq) {
      // Older than what was taken from the same operator: a replay or a message out of order.
      this.counts.stale++;
      log.warn({ event: 'table_stale', seq: position.seq, taken: this.position.seq, serving: holder.current?.version ?? null }, 'ignored a table message older than the live table');
      return;
    }
    let result: ReturnType<TableHolder['apply']>;
    if (message.type === 'delta') {
      const outcome = holder.applyDelta(message, base);
      if ('gap' in outcome) throw new GapError(outcome.error);
      result = outcome;
      if (result.applied) this.counts.deltas++;
    } else {
      result = holder.apply(message.table, base);
      this.counts.tables++;
    }
    if (result.applied) {
      if (position) this.position = position;
      const sameLeader = JSON.stringify(leader) === JSON.stringify(mine);
      this.leader = leader;
      if (result.unchanged) holder.markCurrent();
      if (stateDir) {
        if (result.unchanged && sameLeader) this.saveState(() => touchState(stateDir));
        else this.persistSoon(stateDir);
      }
    }
    if (!result.applied) this.rejected = result.version;
    const ack = result.applied ? { dataplane: this.options.id, version: result.version, applied: true } : { dataplane: this.options.id, version: result.version ?? 'unknown', applied: false, error: result.error };
    await this.sendAck(base, ack);
  }

  /**
   * Writes the live table and its leader to the state directory once the
   * messages already read are handled: a burst of deltas costs one write, and
   * the write never holds up the acknowledgement. stop() writes what is pending.
   */
  private persistSoon(stateDir: string): void {
    const first = this.pendingState === undefined;
    this.pendingState = () => {
      const table = this.options.holder.current?.table;
      if (table) writeState(stateDir, { table, ...(this.leader ? { leader: this.leader } : {}) });
    };
    if (first) setImmediate(() => this.flushState());
  }

  private flushState(): void {
    const write = this.pendingState;
    this.pendingState = undefined;
    if (write) this.saveState(write);
  }

  private saveState(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.options.log.warn({ event: 'state_write_failed', error: (err as Error).message }, 'cannot write the state directory; a restart without the operator would not serve');
    }
  }

  private async answerExplain(base: string, message: { id?: unknown; request?: unknown; namespace?: unknown }): Promise<void> {
    const explain = this.options.explain;
    if (!explain || typeof message.id !== 'string') return;
    try {
      const explanation = await explain(message.request, typeof message.namespace === 'string' ? message.namespace : undefined);
      const res = await request(new URL('/v1/explanations', base), {
        dispatcher: this.agent,
        method: 'POST',
        headers: { authorization: `Bearer ${this.options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ dataplane: this.options.id, id: message.id, explanation }),
      });
      await res.body.dump();
    } catch (err) {
      this.options.log.warn({ event: 'explain_failed', error: (err as Error).message }, 'cannot answer an explain request from the operator');
    }
  }

  private async sendAck(base: string, ack: object): Promise<void> {
    try {
      const res = await request(new URL('/v1/acks', base), {
        dispatcher: this.agent,
        method: 'POST',
        headers: { authorization: `Bearer ${this.options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(ack),
      });
      await res.body.dump();
      if (res.statusCode >= 300) this.options.log.warn({ event: 'ack_refused', status: res.statusCode }, 'the operator refused an acknowledgement');
    } catch (err) {
      this.options.log.warn({ event: 'ack_failed', error: (err as Error).message }, 'cannot acknowledge a table; it is applied anyway');
    }
  }
}
