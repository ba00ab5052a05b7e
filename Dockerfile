# Production image for both the app (API + web UI) and the trainer worker; docker-compose.yml
# runs it twice with different commands.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
# GLIBC_TUNABLES as `npm start` sets it: freed native memory goes back to the system (README).
ENV NODE_ENV=production \
    GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/build ./web/build
COPY --from=build /app/prisma ./prisma
# The demo's shipped first model (used when SEED_DEMO=true; otherwise it is fine-tuned at the start).
COPY --from=build /app/trainer/checkpoints ./trainer/checkpoints
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
CMD ["node", "--max-semi-space-size=16", "--heap-growing-percent=50", "dist/server/main.js"]
