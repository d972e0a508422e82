# The weir image for cluster mode: the per-node agent and the server (deploy/).
#   docker build -t registry.example/weir:0.1.0 .
#   weir install --dry-run --image registry.example/weir:0.1.0 | kubectl apply -f -
# Debian (bookworm) with Node 20, nftables, conntrack and iproute2. better-sqlite3 is compiled
# in a build stage, so the runtime image carries no compiler.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/weir
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The dashboard's static files, then only the runtime dependencies.
RUN npm run build:ui && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables conntrack iproute2 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/weir
COPY --from=build /opt/weir/package.json /opt/weir/package-lock.json ./
COPY --from=build /opt/weir/node_modules ./node_modules
COPY --from=build /opt/weir/bin ./bin
COPY --from=build /opt/weir/src ./src
COPY --from=build /opt/weir/deploy ./deploy
COPY --from=build /opt/weir/examples ./examples
# tsx compiles on first use into its cache under /tmp (an emptyDir in the manifests, which
# keep the root filesystem read-only).
ENV NODE_ENV=production WEIR_LAB_DIR=/tmp/weir
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/weir/bin/weir.js"]
CMD ["--help"]
