// Typed client for generation jobs: a project's prompts answered by its external versions.
import type { CreateGenerationBody, Generation, GenerationDetail } from '$shared/index.js';
import { byId, call, client } from './api.js';

export const generationsApi = {
  /** Newest first. */
  list: (projectId: string): Promise<Generation[]> =>
    call(() => client.GET('/api/projects/{id}/generations', { params: byId(projectId) })),
  /** 400 with the reason when the selection, the versions or the total is refused. */
  create: (projectId: string, body: CreateGenerationBody): Promise<Generation> =>
    call(() => client.POST('/api/projects/{id}/generations', { params: byId(projectId), body })),
  /** The job with its failures per prompt. */
  get: (jobId: string): Promise<GenerationDetail> =>
    call(() => client.GET('/api/generations/{id}', { params: byId(jobId) })),
  cancel: (jobId: string): Promise<Generation> =>
    call(() => client.POST('/api/generations/{id}/cancel', { params: byId(jobId) })),
};

export function isGenerationActive(job: Pick<Generation, 'status'>): boolean {
  return job.status === 'QUEUED' || job.status === 'RUNNING';
}
