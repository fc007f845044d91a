# syntax=docker/dockerfile:1
# The gateway image, which also holds the archiver (`node services/archiver/dist/main.js`).
# Debian 12 (bookworm) + Node 20: the uWebSockets.js build this project uses needs
# glibc 2.36, which newer or Alpine bases do not offer.

# ---- the workspace's manifests: what npm ci needs, in one place ------------------
FROM node:20-bookworm-slim AS manifests
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/broker/package.json packages/broker/
COPY packages/env/package.json packages/env/
COPY packages/archive/package.json packages/archive/
COPY packages/webhooks/package.json packages/webhooks/
COPY packages/testkit/package.json packages/testkit/
COPY packages/client/package.json packages/client/
COPY packages/loadgen/package.json packages/loadgen/
COPY packages/proc/package.json packages/proc/
COPY services/gateway/package.json services/gateway/
COPY services/archiver/package.json services/archiver/

# ---- build: all dependencies, compile TypeScript -------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY --from=manifests /app ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY packages/protocol/tsconfig.json packages/protocol/
COPY packages/protocol/src packages/protocol/src
COPY packages/broker/tsconfig.json packages/broker/
COPY packages/broker/src packages/broker/src
COPY packages/env/tsconfig.json packages/env/
COPY packages/env/src packages/env/src
COPY packages/archive/tsconfig.json packages/archive/
COPY packages/archive/src packages/archive/src
COPY packages/webhooks/tsconfig.json packages/webhooks/
COPY packages/webhooks/src packages/webhooks/src
COPY packages/client/tsconfig.json packages/client/
COPY packages/client/src packages/client/src
COPY services/gateway/tsconfig.json services/gateway/
COPY services/gateway/src services/gateway/src
COPY services/gateway/web services/gateway/web
COPY services/gateway/scripts services/gateway/scripts
COPY services/archiver/tsconfig.json services/archiver/
COPY services/archiver/src services/archiver/src
# The gateway and the archiver, then the chat page the gateway serves (bundled with the client library).
RUN npx tsc -b services/gateway services/archiver packages/client \
 && node services/gateway/scripts/build-web.mjs \
 # The runtime needs the JavaScript only: no declarations, source maps or build info.
 && find packages/*/dist services/*/dist \( -name '*.d.ts' -o -name '*.map' -o -name '.tsbuildinfo' \) -delete

# ---- runtime dependencies only -------------------------------------------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY --from=manifests /app ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund --workspace @chat/gateway --workspace @chat/archiver \
 # uWebSockets.js ships binaries for every platform and Node ABI: keep Linux, Node 20 (ABI 115).
 && find node_modules/uWebSockets.js -name '*.node' ! -name 'uws_linux_*_115.node' -delete \
 && rm -rf node_modules/uWebSockets.js/docs node_modules/uWebSockets.js/dist/*.node \
 && npm cache clean --force

# ---- final: compiled JavaScript and production dependencies, as a non-root user --
FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=8080
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=deps /app/package.json ./
COPY --from=build /app/packages/protocol/package.json packages/protocol/
COPY --from=build /app/packages/protocol/dist packages/protocol/dist
COPY --from=build /app/packages/broker/package.json packages/broker/
COPY --from=build /app/packages/broker/dist packages/broker/dist
COPY --from=build /app/packages/env/package.json packages/env/
COPY --from=build /app/packages/env/dist packages/env/dist
COPY --from=build /app/packages/archive/package.json packages/archive/
COPY --from=build /app/packages/webhooks/package.json packages/webhooks/
COPY --from=build /app/packages/webhooks/dist packages/webhooks/dist
COPY --from=build /app/packages/archive/dist packages/archive/dist
COPY --from=build /app/services/gateway/package.json services/gateway/
COPY --from=build /app/services/gateway/dist services/gateway/dist
COPY --from=build /app/services/archiver/package.json services/archiver/
COPY --from=build /app/services/archiver/dist services/archiver/dist
USER node
EXPOSE 8080 9091
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The gateway handles SIGTERM itself (closes sockets with 1001, exits 0); compose adds an init as well.
STOPSIGNAL SIGTERM
CMD ["node", "services/gateway/dist/main.js"]
