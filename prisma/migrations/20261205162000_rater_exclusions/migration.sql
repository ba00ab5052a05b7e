-- Raters an admin has excluded from a project's training and exports (their judgments stay stored,
-- so that including them again restores everything). One row per (project, rater) while excluded.
CREATE TABLE "RaterExclusion" (
    "projectId" UUID NOT NULL,
    "raterId" UUID NOT NULL,
    "reason" TEXT NOT NULL DEFAULT '',
    "excludedById" UUID,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RaterExclusion_pkey" PRIMARY KEY ("projectId", "raterId")
);

CREATE INDEX "RaterExclusion_raterId_idx" ON "RaterExclusion"("raterId");
CREATE INDEX "RaterExclusion_excludedById_idx" ON "RaterExclusion"("excludedById");

ALTER TABLE "RaterExclusion" ADD CONSTRAINT "RaterExclusion_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "RaterExclusion" ADD CONSTRAINT "RaterExclusion_raterId_fkey" FOREIGN KEY ("raterId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "RaterExclusion" ADD CONSTRAINT "RaterExclusion_excludedById_fkey" FOREIGN KEY ("excludedById") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;
