// Where a command's result goes: stdout, or a file with -o.

import { writeFile } from 'node:fs/promises';
import { CliError } from './exit.js';

export async function writeOutput(text: string, file?: string): Promise<void> {
  if (file === undefined || file === '-') {
    process.stdout.write(text);
    return;
  }
  try {
    await writeFile(file, text, 'utf8');
  } catch (e) {
    throw new CliError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

export function note(text: string): void {
  process.stderr.write(`weir: ${text}\n`);
}
