/** A script ready for ioredis's defineCommand. */
export interface LuaScript {
  numberOfKeys: number;
  lua: string;
}

/**
 * A script that names its keys and arguments: its body reads them as `K.<key>`
 * and `A.<argument>`, and the number of keys comes from the list, so a key
 * added to the list cannot be miscounted. A script that records cluster events
 * takes their four arguments after its own; `EVENT_ARGS` is where they start.
 * `pieces` are named pieces of Lua shared between scripts, joined in order.
 *
 * The names are resolved here, once: `K.stream` becomes `KEYS[1]` in the text
 * Redis runs, so a call pays nothing for them (tables of names built on every
 * call cost the append script a tenth of its time), and a name the lists do not
 * declare fails when the script is defined, not when Redis runs it.
 */
export function luaScript(keys: readonly string[], args: readonly string[], ...pieces: string[]): LuaScript {
  const body = pieces.join('\n').replace(/\b([KA])\.([A-Za-z_]\w*)/g, (use, table: string, name: string) => {
    const at = (table === 'K' ? keys : args).indexOf(name);
    if (at < 0) throw new Error(`a script reads ${use}, which it does not declare (keys: ${keys.join(', ')}; arguments: ${args.join(', ')})`);
    return `${table === 'K' ? 'KEYS' : 'ARGV'}[${at + 1}]`;
  });
  return { numberOfKeys: keys.length, lua: `local EVENT_ARGS = ${args.length + 1}\n${body}` };
}

/** `newer(a, b)`: whether stream id a comes after b. Ids are Redis's own: decimals without leading zeros, so a longer part is a larger one. */
export const ID_ORDER = `
local function newer(a, b)
  local da, db = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  if da ~= db then return da > db end
  local am, bm = string.sub(a, 1, da), string.sub(b, 1, db)
  if am ~= bm then return am > bm end
  if #a ~= #b then return #a > #b end
  return a > b
end
`;

/** `newestId()`: the newest id the room's stream holds ('0-0' for none), a message's or a change's (K.stream). */
export const NEWEST_ID = `
local function newestId()
  local newest = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)[1]
  return newest and newest[1] or '0-0'
end
`;

/**
 * Named constants for a script's text: a broker's settings, the same on every
 * call, cost nothing per call this way. Absent values are `false`, so the
 * script tests them as `if NAME then`. Strings go in long brackets, which need no escaping.
 */
export function luaConstants(values: Record<string, number | string | undefined>): string {
  return Object.entries(values).map(([name, value]) => {
    if (value === undefined) return `local ${name} = false`;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new Error(`${name} must be a finite number`);
      return `local ${name} = ${value}`;
    }
    let level = '';
    while (value.includes(`]${level}]`)) level += '=';
    return `local ${name} = [${level}[${value}]${level}]`;
  }).join('\n');
}
