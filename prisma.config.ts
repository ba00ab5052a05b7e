// Prisma CLI configuration. The runtime connects through core/db/client.ts; migrations are
// applied by core/db/migrate.ts (see README, "Migrations").
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost:5432/loom' },
});
