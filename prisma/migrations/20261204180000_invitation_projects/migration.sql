-- Invitations that name projects: accepting one makes the new user a member of them, so an invited
-- rater finds comparisons waiting instead of an empty queue until an admin adds them.

-- CreateTable
CREATE TABLE "InviteProject" (
    "inviteId" UUID NOT NULL,
    "projectId" UUID NOT NULL,

    CONSTRAINT "InviteProject_pkey" PRIMARY KEY ("inviteId","projectId")
);

-- CreateIndex
CREATE INDEX "InviteProject_projectId_idx" ON "InviteProject"("projectId");

-- AddForeignKey
ALTER TABLE "InviteProject" ADD CONSTRAINT "InviteProject_inviteId_fkey" FOREIGN KEY ("inviteId") REFERENCES "Invite"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InviteProject" ADD CONSTRAINT "InviteProject_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;
