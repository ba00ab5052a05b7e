-- "free" (a rater can take a slot now) is computed by PostgreSQL from the counts and leads the
-- queue's index after "open": taking the next comparison no longer reads past the ones whose
-- missing judgments are all leased (at 200 raters, most of the rows at the head of the queue).

-- DropIndex
DROP INDEX "Comparison_projectId_open_isGold_priority_id_idx";

-- AlterTable
ALTER TABLE "Comparison" ADD COLUMN "free" BOOLEAN NOT NULL GENERATED ALWAYS AS (("voteCount" + "leaseCount") < "requiredVotes") STORED;

-- CreateIndex
CREATE INDEX "Comparison_projectId_open_free_isGold_priority_id_idx" ON "Comparison"("projectId", "open", "free", "isGold", "priority" DESC, "id");
