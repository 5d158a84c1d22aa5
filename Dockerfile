# syntax=docker/dockerfile:1
#
# The Switchyard images, one target each:
#
#   docker build --target dataplane -t switchyard/dataplane:dev .
#   docker build --target operator  -t switchyard/operator:dev .
#   docker build --target examples  -t switchyard/examples:dev .   # the demo services
#
# Node.js 24 runs the TypeScript sources directly (type stripping): there is no
# build step, only the production dependencies. Node.js does not strip types
# under node_modules, and the sources are not there, so this works as in the repo.
#
# Runtime contract, shared by both components:
# - runs as uid/gid 1000 (numeric, so Kubernetes can verify runAsNonRoot);
# - the root filesystem may be read-only: the data plane writes only its
#   --state-dir (/var/lib/switchyard, a volume) and, like the operator, nothing
#   else but /tmp;
# - node is PID 1 through an exec-form ENTRYPOINT (no shell) and handles SIGTERM
#   itself: the data plane fails /ready, drains and exits 0; the operator
#   releases its Lease and exits 0.
# - health: the data plane answers GET /health (liveness) and /ready (readiness:
#   503 until it has a route table, and while draining) on its traffic port
#   8080; the operator answers /healthz and /readyz (ready once every watch has
#   listed) on its metrics port 9091.

ARG NODE_IMAGE=node:24-bookworm-slim

# Production dependencies only. No install script is needed by any of them.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force

FROM ${NODE_IMAGE} AS base
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY dataplane/ ./dataplane/
RUN mkdir -p /var/lib/switchyard \
    && chown 1000:1000 /var/lib/switchyard
USER 1000:1000

# The operator imports the route table's schema from the data plane's sources.
FROM base AS operator
COPY operator/ ./operator/
EXPOSE 18000 9091
# A smaller young generation: at 1,000 routes it cuts the operator's RSS by about
# a third (docs/performance.md, "Memory"), for some more frequent minor GCs.
ENV NODE_OPTIONS="--max-semi-space-size=8"
ENTRYPOINT ["node", "operator/bin/switchyard-operator.ts"]

# The example services (auth, user, metrics) that the kind scripts and the
# compose file put behind the gateway: examples/kubernetes/services/serve.ts.
FROM base AS examples
COPY examples/services.ts ./examples/services.ts
COPY examples/kubernetes/services/serve.ts ./examples/kubernetes/services/serve.ts
ENTRYPOINT ["node", "examples/kubernetes/services/serve.ts"]

# Last, so that a build without --target gives the gateway.
FROM base AS dataplane
EXPOSE 8080 8443 8081 9090
VOLUME ["/var/lib/switchyard"]
ENTRYPOINT ["node", "dataplane/bin/switchyard-dataplane.ts"]
CMD ["--config", "/app/config/gateway.yaml"]
