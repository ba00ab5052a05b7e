// Dataset snapshots: an export frozen as the exact list of judgments, with the filters, format and
// options it was made with, its row count and the sha256 of its bytes, so a paper or a training round
// can cite it and every later download is byte-identical (checked against the stored hash).
import { createHash } from 'node:crypto';
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
import {
  chosenIdsSql,
  CURRENT_ENCODING,
  runExport,
  specOf,
  type ExportResult,
  type ExportSpec,
  type Sink,
} from './exports.js';
import { labelSchemaOf } from './project-settings.js';
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
    identicalLeftOut: snapshot.identicalLeftOut,
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
    encoding: snapshot.encoding,
  };
}

async function levelsOf(prisma: PrismaClient, projectId: string): Promise<number> {
  const project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  return labelSchemaOf(project).strengths.length;
}

const discard: Sink = async () => {};

/**
 * Hashes the file made from a snapshot's frozen judgments and stores its hash, size and rows: from
 * then on every download must repeat those bytes. A snapshot that cannot be hashed is removed.
 */
async function seal(
  prisma: PrismaClient,
  snapshotId: string,
  spec: ExportSpec,
  run: { secret?: string; levels: number },
): Promise<{ saved: DatasetSnapshot; result: ExportResult }> {
  let result: ExportResult;
  try {
    result = await runExport(prisma, { snapshotId }, spec, discard, run);
  } catch (error) {
    await prisma.datasetSnapshot.delete({ where: { id: snapshotId } });
    throw error;
  }
  const saved = await prisma.datasetSnapshot.update({
    where: { id: snapshotId },
    data: {
      rowCount: result.rows,
      identicalLeftOut: result.identical,
      contentHash: result.sha256,
      byteSize: BigInt(result.bytes),
    },
  });
  return { saved, result };
}

/** What a training round freezes: every judgment it learns from, as TRL rows (ties left out). */
export const ROUND_SNAPSHOT_SPEC: ExportSpec = {
  format: 'trl',
  mode: 'raw',
  filters: { excludeGold: true },
  options: {},
  encoding: CURRENT_ENCODING,
};

/** The columns that say how a snapshot's file is made. */
function specColumns(spec: ExportSpec) {
  const { filters, format, mode, options, encoding } = spec;
  return { filters, format, mode, options, encoding };
}

/** A snapshot row before its file is hashed (no hash yet, so it is not listed). */
function unsealed(projectId: string, name: string, spec: ExportSpec) {
  return { projectId, name, ...specColumns(spec), rowCount: 0, contentHash: '' };
}

/**
 * A training round's snapshot: exactly the given judgments, hashed like any other snapshot, so the
 * lineage a round cites downloads and verifies. Made by no one (createdById null).
 */
export async function createRoundSnapshot(
  prisma: PrismaClient,
  projectId: string,
  name: string,
  preferenceIds: readonly string[],
  spec: ExportSpec = ROUND_SNAPSHOT_SPEC,
): Promise<DatasetSnapshot> {
  const snapshot = await prisma.datasetSnapshot.create({
    data: {
      ...unsealed(projectId, name, spec),
      items: { createMany: { data: preferenceIds.map((preferenceId) => ({ preferenceId })) } },
    },
  });
  const { saved } = await seal(prisma, snapshot.id, spec, { levels: await levelsOf(prisma, projectId) });
  return saved;
}

const LEGACY_ROUND_NAME = /^round-\d+-attempt-\d+$/;

/**
 * Rounds once stored, as their snapshot's hash, the sha256 of their judgments' ids and choices
 * rather than of a file (size 0, a download could never verify). When the frozen judgments still
 * match that hash, the snapshot is sealed now like any other: hashed as TRL rows.
 */
async function sealLegacyRoundSnapshots(prisma: PrismaClient, where: { projectId?: string; id?: string }) {
  const legacy = await prisma.datasetSnapshot.findMany({
    where: { ...where, byteSize: 0, createdById: null, NOT: { contentHash: '' } },
  });
  for (const snapshot of legacy) {
    if (!LEGACY_ROUND_NAME.test(snapshot.name)) continue;
    const items = await prisma.datasetSnapshotItem.findMany({
      where: { snapshotId: snapshot.id },
      select: { preference: { select: { id: true, choice: true, strength: true } } },
      orderBy: { preferenceId: 'asc' },
    });
    if (items.length === 0) continue; // a round always learns from some judgments
    const ids = items.map(({ preference: p }) => `${p.id}:${p.choice}:${p.strength ?? ''}`).join('\n');
    if (createHash('sha256').update(ids).digest('hex') !== snapshot.contentHash) continue;
    const spec = ROUND_SNAPSHOT_SPEC;
    const result = await runExport(prisma, { snapshotId: snapshot.id }, spec, discard, {
      levels: await levelsOf(prisma, snapshot.projectId),
    });
    await prisma.datasetSnapshot.update({
      where: { id: snapshot.id },
      data: {
        ...specColumns(spec),
        rowCount: result.rows,
        identicalLeftOut: result.identical,
        contentHash: result.sha256,
        byteSize: BigInt(result.bytes),
      },
    });
  }
}

/** Snapshots as researchers make, list and download them (pseudonyms keyed by the given secret). */
export class SnapshotService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly secret: string,
  ) {}

  async create(projectId: string, body: CreateSnapshotBody, actor: Actor): Promise<Snapshot> {
    const spec = specOf(body);
    const name = body.name.trim();
    if (await this.prisma.datasetSnapshot.findUnique({ where: { projectId_name: { projectId, name } } }))
      throw conflict(`This project already has a snapshot named "${name}".`);
    const levels = await levelsOf(this.prisma, projectId);
    // Freeze the ids first (one statement), then hash the file made from exactly those ids.
    const snapshot = await this.prisma.$transaction(
      async (tx) => {
        const created = await tx.datasetSnapshot.create({
          data: { ...unsealed(projectId, name, spec), createdById: actor.id },
        });
        await tx.$executeRaw`INSERT INTO "DatasetSnapshotItem" ("snapshotId", "preferenceId")
        SELECT ${created.id}::uuid, id FROM (${chosenIdsSql({ projectId, filters: spec.filters })}) AS chosen`;
        return created;
      },
      { timeout: 600_000, maxWait: 10_000 },
    );
    const { saved, result } = await seal(this.prisma, snapshot.id, spec, { secret: this.secret, levels });
    await recordAudit(this.prisma, {
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
        identicalLeftOut: result.identical,
      },
      ip: actor.ip ?? null,
    });
    return toSnapshotDto(saved, result.judgments);
  }

  async list(projectId: string): Promise<Snapshot[]> {
    await sealLegacyRoundSnapshots(this.prisma, { projectId });
    const snapshots = await this.prisma.datasetSnapshot.findMany({
      // A snapshot whose file is still being hashed has no hash yet, and is not listed.
      where: { projectId, NOT: { contentHash: '' } },
      orderBy: { createdAt: 'desc' },
      include: { _count: { select: { items: true } } },
    });
    return snapshots.map(({ _count, ...snapshot }) => toSnapshotDto(snapshot, _count.items));
  }

  /** A sealed snapshot (404 for one still being hashed). */
  async get(id: string): Promise<DatasetSnapshot> {
    await sealLegacyRoundSnapshots(this.prisma, { id });
    const snapshot = await this.prisma.datasetSnapshot.findUnique({ where: { id } });
    if (!snapshot || !snapshot.contentHash) throw notFound('No such snapshot.');
    return snapshot;
  }

  async dto(snapshot: DatasetSnapshot): Promise<Snapshot> {
    return toSnapshotDto(
      snapshot,
      await this.prisma.datasetSnapshotItem.count({ where: { snapshotId: snapshot.id } }),
    );
  }

  /**
   * Streams a snapshot's file again. The bytes are the stored ones as long as the judgments and texts
   * are unchanged; a differing hash (caught after the fact) is logged as an integrity failure.
   */
  async download(snapshot: DatasetSnapshot, sink: Sink, aborted?: () => boolean): Promise<ExportResult> {
    const levels = await levelsOf(this.prisma, snapshot.projectId);
    const result = await runExport(this.prisma, { snapshotId: snapshot.id }, snapshotSpec(snapshot), sink, {
      secret: this.secret,
      levels,
      aborted,
    });
    if (result.sha256 !== snapshot.contentHash)
      throw new HttpError(500, `Snapshot ${snapshot.id} no longer matches its hash.`, 'SNAPSHOT_CHANGED');
    return result;
  }
}
