// Readiness: the API is ready when its database answers.
import type { PrismaClient } from '../db/client.js';
import { HttpError } from '../errors.js';

export class HealthService {
  constructor(private readonly prisma: PrismaClient) {}

  /** Resolves when the database answers a trivial query; a 503 otherwise. */
  async check(): Promise<void> {
    try {
      await this.prisma.$queryRaw`SELECT 1`;
    } catch {
      throw new HttpError(503, 'The database is unavailable.', 'DATABASE_UNAVAILABLE');
    }
  }
}
