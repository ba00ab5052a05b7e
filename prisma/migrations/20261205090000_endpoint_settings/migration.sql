-- External policy versions: the sampling settings sent with every request (system prompt,
-- temperature, top_p, max_tokens, seed, stop) and how many requests may be in flight at once.

-- AlterTable
ALTER TABLE "PolicyVersion" ADD COLUMN "endpointSettings" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN "endpointConcurrency" INTEGER NOT NULL DEFAULT 4;
