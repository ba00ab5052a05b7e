-- A project can be in preparation before it has anything to rate: the demo's first model is
-- loaded or fine-tuned, then sampled into the first comparisons. The phase and its progress are
-- kept on the project so that Rate and the project page show them while it lasts.

-- AlterTable
ALTER TABLE "Project" ADD COLUMN "preparingPhase" TEXT,
ADD COLUMN "preparingProgress" DOUBLE PRECISION NOT NULL DEFAULT 0;
