-- Leases are looked up open: a rater's (the ones they hold, and theirs when they leave a project)
-- and a project's past their expiry (swept every few seconds). The index of every lease by rater,
-- status and expiry grew with every judgment, took a new entry whenever a lease closed, and could
-- not serve the project's sweep, which read the whole table. An index of the open leases alone
-- stays as small as the leases out now, serves both, and closing a lease writes nothing in it.
-- A rater's leases are no longer found all at once by an index: users are disabled, never
-- deleted, by the product (a deletion by hand reads the table once).

-- DropIndex
DROP INDEX "Assignment_raterId_status_expiresAt_idx";

-- CreateIndex
CREATE INDEX "Assignment_raterId_expiresAt_idx" ON "Assignment"("raterId", "expiresAt") WHERE ("status" = 'LEASED');
