# The operator image: TypeScript compiled once in a build stage, production dependencies only in
# the runtime stage, running as a non-root user on Node 24.
FROM node:24-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:24-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080 8081
# V8 flags: src/node-flags.ts says why (node-flags.test.ts keeps this line in step with it).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=100", "dist/main.js"]
