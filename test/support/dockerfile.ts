/** A reader for the repository's Dockerfile, for tests that check it without a Docker engine. */

/** One build stage: its base, its instructions (continuation lines joined). */
export interface Stage {
  name: string;
  from: string;
  instructions: { op: string; args: string }[];
}

/** Parses the Dockerfile into its global ARG defaults and its stages. */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    const argText = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(argText);
      if (!m) throw new Error(`cannot parse ${line}`);
      stages.push({ name: m[2] ?? String(stages.length), from: m[1] as string, instructions: [] });
    } else if (stages.length === 0 && op.toUpperCase() === 'ARG') {
      const [k, v = ''] = argText.split('=');
      args[k as string] = v;
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args: argText });
    }
  }
  return { args, stages };
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  args: Record<string, string>;
  stages: Stage[];
}

/** The stage and the stages it is built on, base first. */
export function stageChain(file: Dockerfile, name: string): Stage[] {
  const s = file.stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  const parent = file.stages.find((x) => x.name === s.from);
  return parent ? [...stageChain(file, parent.name), s] : [s];
}

/** The arguments of every instruction `op` in a stage and its bases. */
export function stageInstructions(file: Dockerfile, name: string, op: string): string[] {
  return stageChain(file, name).flatMap((s) => s.instructions.filter((i) => i.op === op).map((i) => i.args));
}

/** Paths (relative to the repository) that COPY puts into a stage from the build context. */
export function copiedPaths(file: Dockerfile, name: string): string[] {
  return stageInstructions(file, name, 'COPY')
    .filter((a) => !a.startsWith('--from'))
    .flatMap((a) => a.split(/\s+/).slice(0, -1))
    .map((p) => p.replace(/\/$/, ''));
}
