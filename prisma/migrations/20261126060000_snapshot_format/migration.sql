-- AlterTable
ALTER TABLE "DatasetSnapshot" ADD COLUMN     "byteSize" BIGINT NOT NULL DEFAULT '0'::bigint,
ADD COLUMN     "format" TEXT NOT NULL DEFAULT 'trl',
ADD COLUMN     "mode" TEXT NOT NULL DEFAULT 'raw',
ADD COLUMN     "options" JSONB NOT NULL DEFAULT '{}';
