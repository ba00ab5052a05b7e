// Which judgments an export holds: a project and its filters (or a snapshot's frozen list) as SQL,
// every value bound; the two ordered queries an export reads through its cursors (export-merge.ts
// joins them); and the counts shown before an export starts.
import { Prisma, type Choice, type PrismaClient } from '../db/client.js';
import type { ExportFilters } from '../schemas/datasets.js';
import type { Message } from './export-formats.js';
import { notExcludedSql } from './reliability.js';

/** Which judgments: a project and its filters, or the frozen list of a snapshot. */
export type Selection =
  | {
      projectId: string;
      filters: ExportFilters;
      /** Known to have no excluded raters (in this transaction): the filter on them is left out. */
      noExclusions?: boolean;
    }
  | { snapshotId: string };

/** A uuid that must be present: a missing id would otherwise select every project's rows. */
function requiredId(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f-]{36}$/i.test(value)) throw new Error(`${what} is required`);
  return value;
}

const uuidList = (ids: readonly string[]) => Prisma.join(ids.map((id) => Prisma.sql`${id}::uuid`));

/** Only the joins the filters need: on millions of rows each unneeded join costs seconds. */
function fromSql(selection: Selection): Prisma.Sql {
  const f = 'filters' in selection ? selection.filters : {};
  const joins = [Prisma.sql`FROM "Preference" p JOIN "Comparison" c ON c.id = p."comparisonId"`];
  if (f.promptSplits?.length || f.split) joins.push(Prisma.sql`JOIN "Prompt" pr ON pr.id = c."promptId"`);
  if (f.policyVersionIds?.length)
    joins.push(Prisma.sql`JOIN "Response" ra ON ra.id = c."responseAId"
      JOIN "Response" rb ON rb.id = c."responseBId"`);
  if (f.excludeSimulated) joins.push(Prisma.sql`LEFT JOIN "User" u ON u.id = p."raterId"`);
  return Prisma.join(joins, ' ');
}

/** The WHERE conditions of a selection, before the agreement filter; every value is bound. */
function conditions(selection: Selection): Prisma.Sql[] {
  if ('snapshotId' in selection) {
    const snapshotId = requiredId(selection.snapshotId, 'snapshotId');
    return [
      Prisma.sql`p.id IN (SELECT "preferenceId" FROM "DatasetSnapshotItem" WHERE "snapshotId" = ${snapshotId}::uuid)`,
    ];
  }
  const projectId = requiredId(selection.projectId, 'projectId');
  const f = selection.filters;
  // Raters an admin excluded from the project never leave it in an export (a snapshot taken
  // before the exclusion keeps its frozen list).
  const where: Prisma.Sql[] = [Prisma.sql`c."projectId" = ${projectId}::uuid`];
  if (!selection.noExclusions) where.push(notExcludedSql);
  if (f.from !== undefined) where.push(Prisma.sql`p."createdAt" >= ${new Date(f.from)}`);
  if (f.to !== undefined) where.push(Prisma.sql`p."createdAt" < ${new Date(f.to)}`);
  if (f.roundIds?.length) where.push(Prisma.sql`c."roundId" IN (${uuidList(f.roundIds)})`);
  if (f.policyVersionIds?.length) {
    const ids = uuidList(f.policyVersionIds);
    where.push(Prisma.sql`(ra."policyVersionId" IN (${ids}) OR rb."policyVersionId" IN (${ids}))`);
  }
  if (f.excludeSimulated)
    where.push(Prisma.sql`p.source <> 'SIMULATED' AND NOT COALESCE(u.simulated, false)`);
  if (f.excludeImported) where.push(Prisma.sql`p.source <> 'IMPORTED'`);
  if (f.excludeGold) where.push(Prisma.sql`NOT c."isGold"`);
  if (f.promptSplits?.length) {
    where.push(
      Prisma.sql`pr.split::text IN (${Prisma.join(f.promptSplits.map((split) => Prisma.sql`${split}`))})`,
    );
  }
  if (f.minGoldAccuracy !== undefined) {
    // Raters below the bar on gold comparisons (raters who judged no gold stay in).
    where.push(Prisma.sql`(p."raterId" IS NULL OR p."raterId" NOT IN (
      SELECT gp."raterId" FROM "Preference" gp JOIN "Comparison" gc ON gc.id = gp."comparisonId"
      WHERE gc."projectId" = ${projectId}::uuid AND gc."isGold" AND gc."goldChoice" IS NOT NULL
        AND gp."raterId" IS NOT NULL
      GROUP BY gp."raterId"
      HAVING avg(CASE WHEN gp.choice = gc."goldChoice" THEN 1.0 ELSE 0.0 END) < ${f.minGoldAccuracy}))`);
  }
  if (f.split) {
    // A prompt's part depends only on the hash of its id (and the seed): no prompt is in both.
    const inValidation = Prisma.sql`(('x' || substr(md5(${f.split.seed ?? ''} || pr.id::text), 1, 8))::bit(32)::bigint / 4294967296.0) < ${f.split.validationFraction}`;
    where.push(f.split.part === 'validation' ? inValidation : Prisma.sql`NOT ${inValidation}`);
  }
  return where;
}

/**
 * FROM ... WHERE ... for the selected judgments. With minAgreement, only comparisons whose
 * majority share of the selected votes reaches it (whole comparisons in or out, so a snapshot
 * recomputes the same agreement from its frozen ids).
 */
export function selectionSql(selection: Selection): Prisma.Sql {
  const where = Prisma.join(conditions(selection), ' AND ');
  const from = fromSql(selection);
  const base = Prisma.sql`${from} WHERE ${where}`;
  const minAgreement = 'filters' in selection ? selection.filters.minAgreement : undefined;
  if (minAgreement === undefined) return base;
  return Prisma.sql`${base} AND p."comparisonId" IN (
    SELECT "comparisonId" FROM (SELECT p."comparisonId", p.choice, count(*) AS n ${base} GROUP BY 1, 2) votes
    GROUP BY 1 HAVING max(n)::float8 / sum(n) >= ${minAgreement})`;
}

/** The ids an export selects, for freezing into a snapshot. */
export function chosenIdsSql(selection: Selection): Prisma.Sql {
  return Prisma.sql`SELECT p.id ${selectionSql(selection)}`;
}

/**
 * Two ordered streams instead of one wide join: the judgments (narrow rows, by comparison) and
 * their comparisons with prompt and response texts (by id), merged in order. Texts cross the wire
 * once per comparison rather than once per vote, and PostgreSQL sorts narrow rows.
 */
export function judgmentsSql(selection: Selection, pairwise: boolean): Prisma.Sql {
  // Pairwise formats (TRL, HH, OpenRLHF) show only the choice and its strength of each judgment;
  // the other columns come back empty rather than being read, formatted and parsed in vain.
  const detail = pairwise
    ? Prisma.sql`NULL, NULL, NULL, p.choice::text, p.strength, NULL, NULL, NULL, NULL, NULL, NULL`
    : Prisma.sql`p."raterId", p.source::text, p."importSource", p.choice::text, p.strength, p.criteria,
      p.flags, p.rationale, p."shownSwapped", p."timeSpentMs",
      to_char(p."createdAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  return Prisma.sql`SELECT p.id, p."comparisonId", ${detail}, p.ranks
    ${selectionSql(selection)}
    ORDER BY p."comparisonId", p.id`;
}

/**
 * The comparisons of the selected judgments, in id order. For a large selection, every comparison
 * of the project instead (the merge passes over those without selected judgments): one scan
 * instead of a semi-join over all the judgments again.
 */
export function comparisonsSql(selection: Selection, bulk: boolean): Prisma.Sql {
  let where = Prisma.sql`c.id IN (SELECT p."comparisonId" ${selectionSql(selection)})`;
  if (bulk)
    where =
      'projectId' in selection
        ? Prisma.sql`c."projectId" = ${requiredId(selection.projectId, 'projectId')}::uuid`
        : Prisma.sql`c."projectId" = (SELECT "projectId" FROM "DatasetSnapshot" WHERE id = ${requiredId(selection.snapshotId, 'snapshotId')}::uuid)`;
  return Prisma.sql`SELECT c.id, c."promptId", pr.messages, pr.split::text AS "promptSplit",
      ra.text AS "responseA", rb.text AS "responseB", ra.source AS "sourceA", rb.source AS "sourceB",
      pva.name AS "policyVersionA", pvb.name AS "policyVersionB", tr.number AS "roundNumber", c."isGold",
      c."responseIds", ${RANKED}
    FROM "Comparison" c
    JOIN "Prompt" pr ON pr.id = c."promptId"
    JOIN "Response" ra ON ra.id = c."responseAId"
    JOIN "Response" rb ON rb.id = c."responseBId"
    LEFT JOIN "PolicyVersion" pva ON pva.id = ra."policyVersionId"
    LEFT JOIN "PolicyVersion" pvb ON pvb.id = rb."policyVersionId"
    LEFT JOIN "TrainingRound" tr ON tr.id = c."roundId"
    WHERE ${where}
    ORDER BY c.id`;
}

/** A ranking's responses (texts, sources, policy versions) in stored order; nulls for a pair. */
const RANKED = Prisma.raw(
  ['text', 'source', 'version']
    .map(
      (field) => `CASE WHEN cardinality(c."responseIds") > 0 THEN ARRAY(
        SELECT ${field === 'version' ? 'v.name' : `r.${field}`} FROM unnest(c."responseIds") WITH ORDINALITY u(id, n)
        JOIN "Response" r ON r.id = u.id LEFT JOIN "PolicyVersion" v ON v.id = r."policyVersionId"
        ORDER BY u.n) END`,
    )
    .join(', '),
);

/**
 * Column order of judgmentsSql and comparisonsSql (rows are fetched as arrays). In pairwise exports
 * a judgment's columns other than its ids, choice and strength are null (and never read).
 */
export type JudgmentTuple = [
  string,
  string,
  string | null,
  string,
  string | null,
  Choice,
  number | null,
  unknown,
  string[],
  string | null,
  boolean,
  number | null,
  string,
  number[],
];
export type ComparisonTuple = [
  string,
  string,
  Message[],
  string,
  string,
  string,
  string | null,
  string | null,
  string | null,
  string | null,
  number | null,
  boolean,
  string[],
  string[] | null,
  (string | null)[] | null,
  (string | null)[] | null,
];

/** Just the number of judgments (for progress): no distinct counts, so no extra sorts. */
export async function countJudgments(prisma: PrismaClient, selection: Selection): Promise<number> {
  const [row] = await prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n ${selectionSql(selection)}`;
  return row?.n ?? 0;
}

export async function countSelection(prisma: PrismaClient, selection: Selection) {
  const [row] = await prisma.$queryRaw<{ judgments: number; comparisons: number; prompts: number }[]>`
    SELECT count(*)::int AS judgments, count(DISTINCT p."comparisonId")::int AS comparisons,
      count(DISTINCT c."promptId")::int AS prompts
    ${selectionSql(selection)}`;
  return row ?? { judgments: 0, comparisons: 0, prompts: 0 };
}

/**
 * What pairwise files leave out because both responses of the comparison have the same text:
 * A and B judgments (raw rows), and comparisons whose majority is A or B (aggregated rows).
 */
export async function countIdentical(
  prisma: PrismaClient,
  selection: Selection,
): Promise<{ judgments: number; comparisons: number }> {
  // The project's comparisons of two equal texts first (one pass over its responses; usually
  // none), then the selected judgments of those alone: an empty list ends the query at once.
  const project =
    'projectId' in selection
      ? Prisma.sql`${requiredId(selection.projectId, 'projectId')}::uuid`
      : Prisma.sql`(SELECT "projectId" FROM "DatasetSnapshot" WHERE id = ${requiredId(selection.snapshotId, 'snapshotId')}::uuid)`;
  const rows = await prisma.$queryRaw<{ a: number; b: number; tie: number; bad: number }[]>`
    WITH twins AS MATERIALIZED (
      SELECT tc.id FROM "Comparison" tc
      JOIN "Response" xa ON xa.id = tc."responseAId"
      JOIN "Response" xb ON xb.id = tc."responseBId"
      WHERE tc."projectId" = ${project} AND xa.text = xb.text)
    SELECT count(*) FILTER (WHERE p.choice = 'A')::int AS a, count(*) FILTER (WHERE p.choice = 'B')::int AS b,
      count(*) FILTER (WHERE p.choice = 'TIE')::int AS tie,
      count(*) FILTER (WHERE p.choice = 'BOTH_BAD')::int AS bad
    ${selectionSql(selection)} AND p."comparisonId" IN (SELECT id FROM twins)
    GROUP BY p."comparisonId"`;
  let judgments = 0;
  let comparisons = 0;
  for (const row of rows) {
    judgments += row.a + row.b;
    const top = Math.max(row.a, row.b, row.tie, row.bad);
    const atTop = [row.a, row.b, row.tie, row.bad].filter((n) => n === top).length;
    if (atTop === 1 && (row.a === top || row.b === top)) comparisons++;
  }
  return { judgments, comparisons };
}
