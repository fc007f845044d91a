// Writing a benchmark's figures: the results JSON and its section of BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { log, root } from './processes.mjs';

/** The middle of rounds' figures (the upper middle of an even count): one slow round does not move it. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const fmt = (n, digits = 0) => (n === undefined || n === null ? 'n/a' : Number(n).toLocaleString('en-US', { maximumFractionDigits: digits }));

/** Replaces the section headed `heading` (else puts it before "## Commands"), and its line in the Commands block. */
export function spliceSection(text, section, heading, commandLine) {
  const startAt = text.indexOf(`\n${heading}\n`);
  if (startAt >= 0) {
    const next = text.indexOf('\n## ', startAt + 1);
    text = text.slice(0, startAt + 1) + section + (next >= 0 ? `\n${text.slice(next + 1)}` : '');
  } else {
    const commands = text.indexOf('\n## Commands\n');
    text = commands >= 0 ? `${text.slice(0, commands + 1)}${section}\n${text.slice(commands + 1)}` : `${text.trimEnd()}\n\n${section}`;
  }
  const script = commandLine.split('  #')[0];
  const line = new RegExp(`\\n${script.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} {2}#[^\\n]*`);
  if (line.test(text)) text = text.replace(line, `\n${commandLine}`);
  else text = text.replace(/(\nnpm run bench {2,}[^\n]*\n)/, `$1${commandLine}\n`);
  return text;
}

export function machine() {
  const redis = execFileSync('redis-server', ['--version']).toString().split(' ').find((w) => w.startsWith('v='))?.slice(2);
  return `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, Redis ${redis}`;
}

/** Writes the results and their section of BENCHMARKS.md; with --no-write, prints the JSON instead. */
export function report(data, resultsPath, section, heading, commandLine) {
  if (process.argv.includes('--no-write')) {
    process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(resultsPath, `${JSON.stringify(data, null, 2)}\n`);
  const benchmarks = join(root, 'BENCHMARKS.md');
  writeFileSync(benchmarks, spliceSection(readFileSync(benchmarks, 'utf8'), section, heading, commandLine));
  log(`wrote ${resultsPath} and the ${heading.slice(3)} section of BENCHMARKS.md`);
}
