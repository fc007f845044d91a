/**
 * The client's one door to the wire protocol (@chat/protocol). Inside the
 * repository this re-exports the workspace package; the published package
 * carries the protocol inside it instead (scripts/package.mjs puts a bundled
 * copy here at `npm pack`), so an application installs @chat/client alone.
 */
export * from '@chat/protocol';
