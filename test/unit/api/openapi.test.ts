import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { StructuralSchemaError, toStructuralSchema } from '../../../operator/src/api/openapi.ts';
import { withRules } from '../../../operator/src/api/rules.ts';

describe('toStructuralSchema', () => {
  it('keeps descriptions, defaults, enums and bounds; drops additionalProperties and $schema', () => {
    const schema = z
      .strictObject({
        name: z.string().min(1).max(10).describe('a name'),
        mode: z.enum(['A', 'B']).default('A').describe('a mode'),
        count: z.number().int().min(0).max(10).default(1).describe('a count'),
        tags: z.array(z.string().max(5)).max(3).optional().describe('tags'),
      })
      .describe('root');
    expect(toStructuralSchema(schema)).toEqual({
      description: 'root',
      type: 'object',
      required: ['name'],
      properties: {
        name: { description: 'a name', type: 'string', minLength: 1, maxLength: 10 },
        mode: { description: 'a mode', type: 'string', enum: ['A', 'B'], default: 'A' },
        count: { description: 'a count', type: 'integer', format: 'int32', default: 1, minimum: 0, maximum: 10 },
        tags: { description: 'tags', type: 'array', maxItems: 3, items: { type: 'string', maxLength: 5 } },
      },
    });
  });

  it('uses int64 when the bounds do not fit in 32 bits', () => {
    const schema = z.object({ n: z.number().int().min(0).describe('n'), m: z.number().int().min(0).max(2 ** 40).describe('m') }).describe('root');
    const out = toStructuralSchema(schema);
    expect(out.properties?.n).toEqual({ description: 'n', type: 'integer', format: 'int64', minimum: 0 });
    expect(out.properties?.m?.format).toBe('int64');
  });

  it('writes a literal as a one-value enum', () => {
    const out = toStructuralSchema(z.object({ v: z.literal('x').describe('v') }).describe('root'));
    expect(out.properties?.v).toEqual({ description: 'v', type: 'string', enum: ['x'] });
  });

  it('turns an integer-or-string union into x-kubernetes-int-or-string with both branches bounds', () => {
    const port = z.union([z.number().int().min(1).max(65535), z.string().max(15).regex(/^[a-z]+$/)]).describe('port');
    expect(toStructuralSchema(z.object({ port }).describe('root')).properties?.port).toEqual({
      description: 'port',
      'x-kubernetes-int-or-string': true,
      minimum: 1,
      maximum: 65535,
      maxLength: 15,
      pattern: '^[a-z]+$',
    });
  });

  it('carries CEL rules, with fieldPath and reason', () => {
    const schema = withRules(z.object({ a: z.string().max(3).optional().describe('a') }), [
      { rule: 'has(self.a)', message: 'a is required', fieldPath: '.a', reason: 'FieldValueRequired', check: (v) => v.a !== undefined },
    ]).describe('root');
    expect(toStructuralSchema(schema)['x-kubernetes-validations']).toEqual([{ rule: 'has(self.a)', message: 'a is required', fieldPath: '.a', reason: 'FieldValueRequired' }]);
  });

  it('refuses other unions, naming the field', () => {
    const schema = z.object({ x: z.union([z.string(), z.boolean()]).describe('x') }).describe('root');
    expect(() => toStructuralSchema(schema)).toThrow(StructuralSchemaError);
    expect(() => toStructuralSchema(schema)).toThrow(/^x: unions are only supported as integer-or-string/);
  });

  it('refuses a field without a description, naming it', () => {
    const schema = z.object({ outer: z.object({ inner: z.string() }).describe('outer') }).describe('root');
    expect(() => toStructuralSchema(schema)).toThrow(/^outer\.inner: has no description/);
  });

  it('refuses maps and nullable values', () => {
    expect(() => toStructuralSchema(z.object({ m: z.record(z.string(), z.string()).describe('m') }).describe('root'))).toThrow(/^m: maps/);
    expect(() => toStructuralSchema(z.object({ n: z.string().nullable().describe('n') }).describe('root'))).toThrow(/^n: /);
  });
});
