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
 */
export function luaScript(keys: readonly string[], args: readonly string[], ...pieces: string[]): LuaScript {
  const named = (names: readonly string[], table: string) => names.map((name, i) => `${name} = ${table}[${i + 1}]`).join(', ');
  return {
    numberOfKeys: keys.length,
    lua: `local K = { ${named(keys, 'KEYS')} }\nlocal A = { ${named(args, 'ARGV')} }\nlocal EVENT_ARGS = ${args.length + 1}\n${pieces.join('\n')}`,
  };
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
