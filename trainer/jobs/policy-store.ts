// Policies and reward models in PostgreSQL: load a policy version's weights, save new ones.
import type { PrismaClient } from '../../core/db/client.js';
import { loadArtifact, saveArtifact } from '../checkpoint.js';
import { decodePolicy, encodePolicy, type Policy } from '../policy.js';

export async function loadPolicyVersion(prisma: PrismaClient, versionId: string): Promise<Policy> {
  const version = await prisma.policyVersion.findUnique({ where: { id: versionId } });
  if (!version) throw new Error(`policy version ${versionId} not found`);
  if (version.kind !== 'BUILTIN' || !version.artifactId) {
    throw new Error(`policy version ${version.name} has no built-in weights to train (kind ${version.kind})`);
  }
  return decodePolicy(await loadArtifact(prisma, version.artifactId)).policy;
}

export function savePolicy(
  prisma: PrismaClient,
  policy: Policy,
  projectId: string,
  meta: Record<string, unknown> = {},
) {
  return saveArtifact(prisma, encodePolicy(policy, { meta }), { projectId });
}

/** The root of a version's lineage: the SFT policy that KL penalties measure against. */
export async function rootVersionId(prisma: PrismaClient, versionId: string): Promise<string> {
  let current = await prisma.policyVersion.findUniqueOrThrow({
    where: { id: versionId },
    select: { id: true, parentId: true },
  });
  for (let depth = 0; current.parentId && depth < 10_000; depth++) {
    current = await prisma.policyVersion.findUniqueOrThrow({
      where: { id: current.parentId },
      select: { id: true, parentId: true },
    });
  }
  return current.id;
}

/** The text a built-in policy is prompted with: the conversation's last user message. */
export function promptText(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as { role?: string; content?: string }[]) : [];
  return (
    [...list].reverse().find((message) => message.role === 'user')?.content ?? list.at(-1)?.content ?? ''
  );
}
