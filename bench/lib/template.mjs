// Prose lives in bench/templates/*.md; figures go into its {{name}} holes.
import { readFileSync } from 'node:fs';

/** The template `name` with every {{key}} replaced by values[key]; a hole without a value is an error. */
export function fill(name, values) {
  const text = readFileSync(new URL(`../templates/${name}.md`, import.meta.url), 'utf8');
  return text.replace(/\{\{(\w+)\}\}/g, (_, key) => {
    if (!(key in values)) throw new Error(`bench/templates/${name}.md: no value for {{${key}}}`);
    return String(values[key]);
  });
}
