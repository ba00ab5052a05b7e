// Dataset snapshots: an export frozen as the exact list of judgments, with the filters, format and
// options it was made with, its row count and the sha256 of its bytes, so a paper or a training round
// can cite it and every later download is byte-identical (checked against the stored hash).
import type { DatasetSnapshot, PrismaClient } from '../db/client.js';
import { conflict, HttpError, notFound } from '../errors.js';
import type {
  CreateSnapshotBody,
  ExportFilters,
  ExportFormat,
  ExportOptions,
  Snapshot,
} from '../schemas/datasets.js';
import { recordAudit } from './audit.js';
import { chosenIdsSql, runExport, specOf, type ExportResult, type ExportSpec, type Sink } from './exports.js';
import { labelSchemaOf } from './projects.js';
import type { Actor } from './users.js';

export function toSnapshotDto(snapshot: DatasetSnapshot, judgments: number): Snapshot {
  return {
    id: snapshot.id,
    projectId: snapshot.projectId,
    name: snapshot.name,
    format: snapshot.format as ExportFormat,
    mode: snapshot.mode === 'aggregated' ? 'aggregated' : 'raw',
    filters: snapshot.filters as ExportFilters,
    options: snapshot.options as ExportOptions,
    rowCount: snapshot.rowCount,
    judgments,
    contentHash: snapshot.contentHash,
    byteSize: Number(snapshot.byteSize),
    createdById: snapshot.createdById,
    createdAt: snapshot.createdAt.toISOString(),
  };
}

export function snapshotSpec(snapshot: DatasetSnapshot): ExportSpec {
  return {
    format: snapshot.format as ExportFormat,
    mode: snapshot.mode === 'aggregated' ? 'aggregated' : 'raw',
    filters: snapshot.filters as ExportFilters,
    options: snapshot.options as ExportOptions,
  };
}

async function levelsOf(prisma: PrismaClient, projectId: string): Promise<number> {
  const project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  return labelSchemaOf(project).strengths.length;
}

const discard: Sink = async () => {};

export async function createSnapshot(
  prisma: PrismaClient,
  secret: string,
  projectId: string,
  body: CreateSnapshotBody,
  actor: Actor,
): Promise<Snapshot> {
  const spec = specOf(body);
  const name = body.name.trim();
  if (await prisma.datasetSnapshot.findUnique({ where: { projectId_name: { projectId, name } } }))
    throw conflict(`This project already has a snapshot named "${name}".`);
  const levels = await levelsOf(prisma, projectId);
  // Freeze the ids first (one statement), then hash the file made from exactly those ids.
  const snapshot = await prisma.$transaction(
    async (tx) => {
      const created = await tx.datasetSnapshot.create({
        data: {
          projectId,
          name,
          filters: spec.filters,
          format: spec.format,
          mode: spec.mode,
          options: spec.options,
          rowCount: 0,
          contentHash: '',
          createdById: actor.id,
        },
      });
      await tx.$executeRaw`INSERT INTO "DatasetSnapshotItem" ("snapshotId", "preferenceId")
      SELECT ${created.id}::uuid, id FROM (${chosenIdsSql({ projectId, filters: spec.filters })}) AS chosen`;
      return created;
    },
    { timeout: 600_000, maxWait: 10_000 },
  );
  let result: ExportResult;
  try {
    result = await runExport(prisma, { snapshotId: snapshot.id }, spec, discard, { secret, levels });
  } catch (error) {
    await prisma.datasetSnapshot.delete({ where: { id: snapshot.id } });
    throw error;
  }
  const saved = await prisma.datasetSnapshot.update({
    where: { id: snapshot.id },
    data: { rowCount: result.rows, contentHash: result.sha256, byteSize: BigInt(result.bytes) },
  });
  await recordAudit(prisma, {
    actorId: actor.id,
    action: 'snapshot.create',
    targetType: 'snapshot',
    targetId: snapshot.id,
    details: {
      projectId,
      name,
      format: spec.format,
      mode: spec.mode,
      judgments: result.judgments,
      rows: result.rows,
    },
    ip: actor.ip ?? null,
  });
  return toSnapshotDto(saved, result.judgments);
}

async function judgmentsIn(prisma: PrismaClient, snapshotId: string): Promise<number> {
  return prisma.datasetSnapshotItem.count({ where: { snapshotId } });
}

export async function listSnapshots(prisma: PrismaClient, projectId: string): Promise<Snapshot[]> {
  const snapshots = await prisma.datasetSnapshot.findMany({
    // A snapshot whose file is still being hashed has no hash yet, and is not listed.
    where: { projectId, NOT: { contentHash: '' } },
    orderBy: { createdAt: 'desc' },
    include: { _count: { select: { items: true } } },
  });
  return snapshots.map(({ _count, ...snapshot }) => toSnapshotDto(snapshot, _count.items));
}

export async function getSnapshot(prisma: PrismaClient, id: string): Promise<DatasetSnapshot> {
  const snapshot = await prisma.datasetSnapshot.findUnique({ where: { id } });
  if (!snapshot || !snapshot.contentHash) throw notFound('No such snapshot.');
  return snapshot;
}

export async function snapshotDto(prisma: PrismaClient, snapshot: DatasetSnapshot): Promise<Snapshot> {
  return toSnapshotDto(snapshot, await judgmentsIn(prisma, snapshot.id));
}

/**
 * Streams a snapshot's file again. The bytes are the stored ones as long as the judgments and texts
 * are unchanged; a differing hash (caught after the fact) is logged as an integrity failure.
 */
export async function downloadSnapshot(
  prisma: PrismaClient,
  secret: string,
  snapshot: DatasetSnapshot,
  sink: Sink,
  aborted?: () => boolean,
): Promise<ExportResult> {
  const levels = await levelsOf(prisma, snapshot.projectId);
  const result = await runExport(prisma, { snapshotId: snapshot.id }, snapshotSpec(snapshot), sink, {
    secret,
    levels,
    aborted,
  });
  if (result.sha256 !== snapshot.contentHash)
    throw new HttpError(500, `Snapshot ${snapshot.id} no longer matches its hash.`, 'SNAPSHOT_CHANGED');
  return result;
}
