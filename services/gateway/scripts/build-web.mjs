#!/usr/bin/env node
// Builds the chat page into services/gateway/dist/public: app.ts bundled (with
// @chat/client and @chat/protocol) by esbuild, plus index.html and style.css.
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const web = fileURLToPath(new URL('../web/', import.meta.url));
const out = fileURLToPath(new URL('../dist/public/', import.meta.url));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [`${web}app.ts`],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  outfile: `${out}app.js`,
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) copyFileSync(`${web}${file}`, `${out}${file}`);
