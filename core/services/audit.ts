// The audit log: who did what to which object, for admins to review.
import type { Prisma, PrismaClient } from '../db/client.js';

export interface AuditEvent {
  actorId: string | null;
  action: string;
  targetType?: string;
  targetId?: string;
  details?: Prisma.InputJsonObject;
  ip?: string | null;
}

type Db = PrismaClient | Prisma.TransactionClient;

export function recordAudit(db: Db, event: AuditEvent): Promise<unknown> {
  return db.auditLog.create({
    data: {
      actorId: event.actorId,
      action: event.action,
      targetType: event.targetType ?? null,
      targetId: event.targetId ?? null,
      details: event.details ?? {},
      ip: event.ip ?? null,
    },
  });
}

/** The log as admins read it; services write to it with recordAudit, inside their transactions. */
export class AuditService {
  constructor(private readonly prisma: PrismaClient) {}

  /** A page of the log, newest first: entries before the given id. */
  async list(before: bigint | undefined, limit: number) {
    const rows = await this.prisma.auditLog.findMany({
      where: before === undefined ? {} : { id: { lt: before } },
      orderBy: { id: 'desc' },
      take: limit + 1,
      include: { actor: { select: { email: true } } },
    });
    const page = rows.slice(0, limit);
    return {
      entries: page.map((row) => ({
        id: row.id.toString(),
        actorId: row.actorId,
        actorEmail: row.actor?.email ?? null,
        action: row.action,
        targetType: row.targetType,
        targetId: row.targetId,
        details: (row.details ?? {}) as Record<string, unknown>,
        ip: row.ip,
        createdAt: row.createdAt.toISOString(),
      })),
      nextBefore: rows.length > limit ? (page.at(-1)?.id.toString() ?? null) : null,
    };
  }
}
