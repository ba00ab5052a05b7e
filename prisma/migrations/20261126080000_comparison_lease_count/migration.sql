-- Leases held on each comparison, on the comparison's own row: taking the next comparison is one
-- statement that locks a row with a free slot, instead of counting leases per candidate.
-- Leases already past their expiry are expired here; from now on the queue sweeps them.

-- AlterTable
ALTER TABLE "Comparison" ADD COLUMN "leaseCount" INTEGER NOT NULL DEFAULT 0;

UPDATE "Assignment" SET status = 'EXPIRED' WHERE status = 'LEASED' AND "expiresAt" <= now();

UPDATE "Comparison" c SET "leaseCount" = held.n
FROM (SELECT "comparisonId", count(*)::int AS n FROM "Assignment" WHERE status = 'LEASED' GROUP BY 1) held
WHERE held."comparisonId" = c.id;
