-- How a snapshot's file is encoded. A download repeats the bytes a snapshot was hashed with, so a
-- change in how rows are written (the separator between prompt and completion in string formats,
-- pairs of identical responses left out of pairwise files, spreadsheet-safe CSV by default) applies
-- to snapshots made from then on; the snapshots made before keep the encoding they were hashed with.
ALTER TABLE "DatasetSnapshot" ADD COLUMN "encoding" INTEGER NOT NULL DEFAULT 1;
ALTER TABLE "DatasetSnapshot" ALTER COLUMN "encoding" SET DEFAULT 2;

-- Pairs a pairwise file leaves out because both responses have the same text (encoding 2 on).
ALTER TABLE "DatasetSnapshot" ADD COLUMN "identicalLeftOut" INTEGER NOT NULL DEFAULT 0;
