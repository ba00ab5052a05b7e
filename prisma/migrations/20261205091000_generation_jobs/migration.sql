-- Generation jobs: a project's prompts (all, a split, a filter, a random sample) × external policy
-- versions × samples per prompt, answered by the versions' endpoints in the trainer worker. One
-- item per (prompt, version, sample index); a response is stored at most once per such key, so a
-- retried, restarted or killed job never stores one twice (older responses, without a sample
-- index, stay free of the rule).

-- CreateEnum
CREATE TYPE "GenerationStatus" AS ENUM ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED');

-- CreateEnum
CREATE TYPE "GenerationItemStatus" AS ENUM ('PENDING', 'DONE', 'FAILED');

-- AlterTable
ALTER TABLE "Response" ADD COLUMN "sampleIndex" INTEGER;

-- CreateIndex
CREATE UNIQUE INDEX "Response_promptId_policyVersionId_sampleIndex_key" ON "Response"("promptId", "policyVersionId", "sampleIndex");

-- CreateTable
CREATE TABLE "GenerationJob" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "projectId" UUID NOT NULL,
    "status" "GenerationStatus" NOT NULL DEFAULT 'QUEUED',
    "selection" JSONB NOT NULL DEFAULT '{}',
    "versionIds" UUID[],
    "samplesPerPrompt" INTEGER NOT NULL DEFAULT 1,
    "total" INTEGER NOT NULL DEFAULT 0,
    "done" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "expandedAt" TIMESTAMPTZ(3),
    "createdById" UUID,
    "cancelRequestedAt" TIMESTAMPTZ(3),
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "GenerationJob_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "GenerationItem" (
    "id" BIGSERIAL NOT NULL,
    "jobId" UUID NOT NULL,
    "promptId" UUID NOT NULL,
    "policyVersionId" UUID NOT NULL,
    "sampleIndex" INTEGER NOT NULL,
    "status" "GenerationItemStatus" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "lastError" TEXT,
    "latencyMs" INTEGER,
    "finishReason" TEXT,
    "promptTokens" INTEGER,
    "completionTokens" INTEGER,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "GenerationItem_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "GenerationJob_projectId_createdAt_idx" ON "GenerationJob"("projectId", "createdAt");

-- CreateIndex
CREATE INDEX "GenerationJob_status_idx" ON "GenerationJob"("status");

-- CreateIndex
CREATE INDEX "GenerationJob_createdById_idx" ON "GenerationJob"("createdById");

-- CreateIndex
CREATE UNIQUE INDEX "GenerationItem_jobId_promptId_policyVersionId_sampleIndex_key" ON "GenerationItem"("jobId", "promptId", "policyVersionId", "sampleIndex");

-- CreateIndex
CREATE INDEX "GenerationItem_jobId_status_idx" ON "GenerationItem"("jobId", "status");

-- CreateIndex
CREATE INDEX "GenerationItem_promptId_idx" ON "GenerationItem"("promptId");

-- CreateIndex
CREATE INDEX "GenerationItem_policyVersionId_idx" ON "GenerationItem"("policyVersionId");

-- AddForeignKey
ALTER TABLE "GenerationJob" ADD CONSTRAINT "GenerationJob_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GenerationJob" ADD CONSTRAINT "GenerationJob_createdById_fkey" FOREIGN KEY ("createdById") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GenerationItem" ADD CONSTRAINT "GenerationItem_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "GenerationJob"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GenerationItem" ADD CONSTRAINT "GenerationItem_promptId_fkey" FOREIGN KEY ("promptId") REFERENCES "Prompt"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GenerationItem" ADD CONSTRAINT "GenerationItem_policyVersionId_fkey" FOREIGN KEY ("policyVersionId") REFERENCES "PolicyVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;
