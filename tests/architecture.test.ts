import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/*
 * The dependency rules of the tree, checked on the sources: services depend on
 * packages and never the other way; the product never imports test code; the
 * broker depends on no other package of the repository; no import cycles.
 */
const root = fileURLToPath(new URL('../', import.meta.url));
const units = ['packages', 'services'].flatMap((kind) => readdirSync(join(root, kind)).map((name) => join(kind, name)));

function sourcesOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
    }
  };
  walk(join(root, dir, 'src'));
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const importsOf = (file: string): string[] => [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => m[1] ?? m[2]!);
const packageName = (unit: string): string => (JSON.parse(readFileSync(join(root, unit, 'package.json'), 'utf8')) as { name: string }).name;
const names = new Map(units.map((u) => [packageName(u), u]));

describe('the dependency rules', () => {
  it('no package imports a service, and no product code imports test code', () => {
    const broken: string[] = [];
    for (const unit of units) {
      for (const file of sourcesOf(unit)) {
        for (const spec of importsOf(file)) {
          const target = spec.startsWith('.') ? relative(root, resolve(dirname(file), spec)) : names.get(spec) ?? spec;
          if (unit.startsWith('packages/') && target.startsWith('services/')) broken.push(`${relative(root, file)} imports ${spec}`);
          if (unit !== 'packages/testkit' && (target.startsWith('packages/testkit') || target.startsWith('tests/'))) broken.push(`${relative(root, file)} imports test code ${spec}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('the broker imports no other package of the repository (its tsconfig makes tsc refuse one)', () => {
    const chat = sourcesOf('packages/broker').flatMap((file) => importsOf(file).filter((s) => s.startsWith('@chat/')).map((s) => `${relative(root, file)}: ${s}`));
    expect(chat).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(root, 'packages/broker/package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(manifest.dependencies).filter((d) => d.startsWith('@chat/'))).toEqual([]);
  });

  it('has no import cycle, between packages or between files', () => {
    // Packages, from their manifests.
    const deps = new Map(units.map((u) => {
      const m = JSON.parse(readFileSync(join(root, u, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      return [u, Object.keys(m.dependencies ?? {}).flatMap((d) => (names.has(d) ? [names.get(d)!] : []))];
    }));
    expect(cycles(deps)).toEqual([]);
    // Files, from their relative imports.
    const files = new Map<string, string[]>();
    for (const unit of units) {
      for (const file of sourcesOf(unit)) {
        files.set(file, importsOf(file).filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts')));
      }
    }
    expect(cycles(files).map((c) => c.map((f) => relative(root, f)).join(' -> '))).toEqual([]);
  });
});

/** Every cycle found by a depth-first walk of `graph` (each as the nodes along it). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (state.get(node) === undefined) visit(node);
  return found;
}
