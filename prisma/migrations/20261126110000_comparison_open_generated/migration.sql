-- "open" (the comparison still needs judgments) is computed by PostgreSQL from the counts instead of
-- being written alongside them: imported comparisons were created complete but open, so the queue
-- scanned past them and raters' "left for you" counted them.

-- DropIndex
DROP INDEX "Comparison_projectId_open_isGold_priority_id_idx";

-- AlterTable
ALTER TABLE "Comparison" DROP COLUMN "open";
ALTER TABLE "Comparison" ADD COLUMN "open" BOOLEAN NOT NULL GENERATED ALWAYS AS ("voteCount" < "requiredVotes") STORED;

-- CreateIndex
CREATE INDEX "Comparison_projectId_open_isGold_priority_id_idx" ON "Comparison"("projectId", "open", "isGold", "priority" DESC, "id");
