-- Rounds on external training engines (TRL first): the engine and its settings, the prompts chosen
-- for new-vs-parent comparisons, and the lease an external worker holds; API tokens scoped to training.
ALTER TABLE "TrainingRound" ADD COLUMN "engine" TEXT NOT NULL DEFAULT 'builtin';
ALTER TABLE "TrainingRound" ADD COLUMN "engineSettings" JSONB NOT NULL DEFAULT '{}';
ALTER TABLE "TrainingRound" ADD COLUMN "comparisonPromptIds" UUID[] DEFAULT ARRAY[]::UUID[];
ALTER TABLE "TrainingRound" ADD COLUMN "leaseExpiresAt" TIMESTAMPTZ(3);
ALTER TABLE "TrainingRound" ADD COLUMN "workerName" TEXT;

CREATE INDEX "TrainingRound_engine_status_idx" ON "TrainingRound"("engine", "status");

ALTER TABLE "ApiToken" ADD COLUMN "scope" TEXT NOT NULL DEFAULT 'user';
