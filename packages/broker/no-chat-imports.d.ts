// What any `@chat/*` import resolves to inside packages/broker (see its tsconfig.json):
// nothing. The broker moves bytes and depends on no other package of this repository,
// so tsc -b refuses such an import ("has no exported member").
export {};
