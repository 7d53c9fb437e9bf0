# The operator image for `docker build`: TypeScript compiled once in a build stage, production
# dependencies only (without the optional @kubernetes/client-node, needed only for exec/auth-provider
# kubeconfigs outside a cluster), on a distroless runtime: no shell, no npm, numeric user 65532 so
# the kubelet can verify runAsNonRoot. Bases pinned by digest: bump tag and digest together.
# scripts/image.sh builds the same image from scratch with buildah; test/image/image-parity.test.ts
# keeps the two in step (user, entrypoint, flags, files).
FROM node:24.21.0-bookworm-slim@sha256:0e0ff40c39bc087845bfb27465a0df4ea419520094bc35842ff83dd8cbe6f9b6 AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER 65532:65532
EXPOSE 8443 8081
# V8 flags: src/node-flags.ts says why (node-flags.test.ts keeps this line in step with it).
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=8", "--heap-growing-percent=100", "dist/main.js"]
