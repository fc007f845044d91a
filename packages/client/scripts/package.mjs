#!/usr/bin/env node
// Makes packages/client installable outside this repository; npm runs it around `npm pack`
// and `npm publish` (package.json prepack/postpack):
//   node scripts/package.mjs pack      build, then put the wire protocol inside dist
//   node scripts/package.mjs restore   dist as the workspace build has it again
//
// In the workspace, dist/protocol.js and dist/protocol.d.ts re-export @chat/protocol, a
// private workspace package. For the tarball, `pack` replaces them with the protocol
// itself: its code bundled into dist/protocol.js (esbuild) and its declarations copied to
// dist/protocol/, so the package has no dependency at all. The rest of dist is tsc's
// output, unchanged. Both forms behave the same, so a workspace process that loads the
// client meanwhile is not affected; files are replaced by rename, never half-written.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('..', import.meta.url));
const dist = join(here, 'dist');
const saved = join(here, '.prepack');
const require = createRequire(join(here, 'package.json'));
const REPLACED = ['protocol.js', 'protocol.d.ts'];

function writeAtomically(path, text) {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

function pack() {
  const tsc = require.resolve('typescript/bin/tsc');
  const built = spawnSync(process.execPath, [tsc, '-b', here], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('tsc -b failed');
  if (!existsSync(saved)) {
    mkdirSync(saved, { recursive: true });
    for (const file of REPLACED) copyFileSync(join(dist, file), join(saved, file));
  }

  // The protocol's code, bundled: the only module of the package that is not tsc's output.
  const protocolEntry = require.resolve('@chat/protocol');
  const esbuild = require('esbuild');
  const bundled = esbuild.buildSync({
    entryPoints: [protocolEntry], bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', write: false, logLevel: 'warning',
    banner: { js: '// @chat/protocol, bundled into @chat/client by scripts/package.mjs' },
  });
  writeAtomically(join(dist, 'protocol.js'), bundled.outputFiles[0].text);

  // Its declarations beside it.
  const protocolDist = dirname(protocolEntry);
  const types = join(dist, 'protocol');
  mkdirSync(types, { recursive: true });
  for (const file of readdirSync(protocolDist).filter((f) => f.endsWith('.d.ts'))) {
    const text = readFileSync(join(protocolDist, file), 'utf8').replace(/^\/\/# sourceMappingURL=.*$/m, '');
    writeAtomically(join(types, file), text);
  }
  writeAtomically(join(dist, 'protocol.d.ts'), "export * from './protocol/index.js';\n");

  // Nothing in the package may still need a workspace package.
  const leftovers = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(js|d\.ts)$/.test(entry.name) && /from\s+['"]@chat\//.test(readFileSync(path, 'utf8'))) leftovers.push(path);
    }
  };
  walk(dist);
  if (leftovers.length > 0) throw new Error(`still importing a workspace package: ${leftovers.join(', ')}`);
}

function restore() {
  if (!existsSync(saved)) return;
  for (const file of REPLACED) writeAtomically(join(dist, file), readFileSync(join(saved, file), 'utf8'));
  rmSync(join(dist, 'protocol'), { recursive: true, force: true });
  rmSync(saved, { recursive: true, force: true });
}

const mode = process.argv[2];
if (mode === 'pack') pack();
else if (mode === 'restore') restore();
else {
  process.stderr.write('usage: node scripts/package.mjs pack|restore\n');
  process.exit(2);
}
