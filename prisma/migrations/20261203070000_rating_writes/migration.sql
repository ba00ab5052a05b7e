-- Fewer index entries per judgment (rating wrote fifteen, and two foreign-key checks per row more
-- than it needs):
-- * A judgment's lease is the one of its comparison and rater, both unique on each side, so
--   "Preference"."assignmentId" needs neither its own unique index nor a foreign key; it stays as
--   a plain reference (undo finds the lease by it).
-- * "free" (a rater can take a slot now) leaves the queue's index: taking a comparison's slots
--   and judging it no longer changes an indexed column but when the last judgment closes it, so
--   only that update writes index entries (it was two of them, six entries each). The queue reads
--   past the comparisons whose slots are all leased; batches take whole comparisons from the head,
--   so those are few.

-- DropForeignKey
ALTER TABLE "Preference" DROP CONSTRAINT "Preference_assignmentId_fkey";

-- DropIndex
DROP INDEX "Preference_assignmentId_key";

-- DropIndex
DROP INDEX "Comparison_projectId_open_free_isGold_priority_id_idx";

-- CreateIndex
CREATE INDEX "Comparison_projectId_open_isGold_priority_id_idx" ON "Comparison"("projectId", "open", "isGold", "priority" DESC, "id");
