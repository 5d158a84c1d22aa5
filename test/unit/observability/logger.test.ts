import { describe, expect, it } from 'vitest';
import { prettyLine } from '../../../dataplane/src/observability/logger.ts';

describe('prettyLine', () => {
  it('puts time, level and message first, then the other fields in logged order, without the service name', () => {
    const json = JSON.stringify({ level: 'info', time: '2026-01-02T03:04:05.678Z', service: 'switchyard-dataplane', event: 'access', method: 'GET', path: '/api/v1/users/7', status: 200, completed: true, error: null, msg: 'request' });
    expect(prettyLine(`${json}\n`)).toBe('2026-01-02T03:04:05.678Z INFO  request event=access method=GET path=/api/v1/users/7 status=200 completed=true error=null\n');
  });

  it('writes values with spaces, quotes or structure as JSON, and escapes line breaks, so a record stays one line', () => {
    const json = JSON.stringify({ level: 'error', time: 't', msg: 'config rejected\nsee above', error: 'a "b" c', ports: { http: 80 }, list: ['x', 'y'], empty: '' });
    const line = prettyLine(json);
    expect(line).toBe('t ERROR config rejected\\nsee above error="a \\"b\\" c" ports={"http":80} list=["x","y"] empty=""\n');
    expect(line.indexOf('\n')).toBe(line.length - 1);
  });

  it('passes a line that is not JSON through unchanged', () => {
    expect(prettyLine('not json')).toBe('not json\n');
  });
});
