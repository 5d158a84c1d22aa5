#!/usr/bin/env node
// The operator's executable; everything else is in src/main.ts.
import { main } from '../src/main.ts';

process.exitCode = await main(process.argv.slice(2));
