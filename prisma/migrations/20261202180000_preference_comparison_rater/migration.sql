-- A judgment is unique per (comparison, rater) in that order: the one index also serves the
-- lookups of a comparison's judgments, which had an index of their own. Storing a judgment writes
-- one index entry fewer (rating writes ~16 per judgment across its tables); a rater's judgments
-- are found through ("raterId", "idempotencyKey").

-- DropIndex
DROP INDEX "Preference_comparisonId_idx";

-- DropIndex
DROP INDEX "Preference_raterId_comparisonId_key";

-- CreateIndex
CREATE UNIQUE INDEX "Preference_comparisonId_raterId_key" ON "Preference"("comparisonId", "raterId");
