-- Fewer index entries per written row (imports and generations write hundreds of thousands):
-- Response's promptId index repeats the leading column of its (promptId, policyVersionId,
-- sampleIndex) unique index, which serves the same lookups; responses without a policy version
-- (imported) and comparisons outside a round are never looked up by those columns' NULL, so their
-- indexes leave them out. "= value" lookups and the foreign keys' actions still use them.
DROP INDEX IF EXISTS "Response_promptId_idx";

DROP INDEX IF EXISTS "Response_policyVersionId_idx";
CREATE INDEX "Response_policyVersionId_idx" ON "Response"("policyVersionId") WHERE "policyVersionId" IS NOT NULL;

DROP INDEX IF EXISTS "Comparison_roundId_idx";
CREATE INDEX "Comparison_roundId_idx" ON "Comparison"("roundId") WHERE "roundId" IS NOT NULL;
