#!/usr/bin/env node
// The kubectl plugin's executable (`kubectl switchyard ...`); everything else is in src/main.ts.
import { main } from '../src/main.ts';

process.exitCode = await main(process.argv.slice(2));
