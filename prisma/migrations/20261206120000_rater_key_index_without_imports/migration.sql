-- Imported judgments have no rater, and a unique index never compares NULLs: the (rater,
-- idempotency key) index leaves them out instead of adding an entry per imported row. Lookups by
-- rater ("= value"), with or without the key, and the rater foreign key still use it.
DROP INDEX IF EXISTS "Preference_raterId_idempotencyKey_key";
CREATE UNIQUE INDEX "Preference_raterId_idempotencyKey_key" ON "Preference"("raterId", "idempotencyKey") WHERE "raterId" IS NOT NULL;
