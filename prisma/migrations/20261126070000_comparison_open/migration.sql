-- The queue walks open comparisons in priority order through one index, so that leasing stays
-- fast however many comparisons are complete. "open" = "voteCount" < "requiredVotes", kept in
-- step by every statement that changes either.

-- AlterTable
ALTER TABLE "Comparison" ADD COLUMN "open" BOOLEAN NOT NULL DEFAULT true;

UPDATE "Comparison" SET "open" = "voteCount" < "requiredVotes";

-- DropIndex
DROP INDEX "Comparison_projectId_priority_idx";

-- CreateIndex
CREATE INDEX "Comparison_projectId_open_isGold_priority_id_idx" ON "Comparison"("projectId", "open", "isGold", "priority" DESC, "id");
