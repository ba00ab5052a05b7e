// What a generation job calls: the versions' endpoints through the endpoint client, as the
// configuration allows them (outbound hosts, the key that decrypts their API keys).
import type { Config } from '../../core/config.js';
import type { PrismaClient } from '../../core/db/client.js';
import { createEndpointClient } from '../../core/endpoints/client.js';
import { loadEndpointTarget } from '../../core/services/endpoints.js';
import type { GenerationDeps } from './generation.js';

export function endpointDeps(
  prisma: PrismaClient,
  config: Config,
): Pick<GenerationDeps, 'target' | 'client'> {
  return {
    target: (versionId) => loadEndpointTarget(prisma, config, versionId),
    client: (target) => createEndpointClient(target, { allowHosts: config.outboundAllowHosts }),
  };
}
