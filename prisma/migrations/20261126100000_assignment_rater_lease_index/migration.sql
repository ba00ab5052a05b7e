-- A rater's open leases are found by (rater, status, expiry); expired leases are swept per project
-- through its members with the same index. The index on (status, expiresAt) is gone: the planner
-- took it for single-lease lookups (LEASED is rare among all assignments, so it looked selective)
-- and then read every open lease of every rater.

-- DropIndex
DROP INDEX "Assignment_raterId_status_idx";

-- DropIndex
DROP INDEX "Assignment_status_expiresAt_idx";

-- CreateIndex
CREATE INDEX "Assignment_raterId_status_expiresAt_idx" ON "Assignment"("raterId", "status", "expiresAt");
