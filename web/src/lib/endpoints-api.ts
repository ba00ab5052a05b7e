// Typed client for a project's models: its policy versions, and external versions' endpoints
// (register, edit, delete, test the connection). API keys go in and never come back.
import type {
  CreateEndpointBody,
  EndpointTestResult,
  ModelVersion,
  TestDraftEndpointBody,
  UpdateEndpointBody,
} from '$shared/endpoints.js';
import { call, client } from './api.js';

export const endpointsApi = {
  list: (projectId: string): Promise<ModelVersion[]> =>
    call(() => client.GET('/api/projects/{id}/endpoints', { params: { path: { id: projectId } } })),
  create: (projectId: string, body: CreateEndpointBody): Promise<ModelVersion> =>
    call(() => client.POST('/api/projects/{id}/endpoints', { params: { path: { id: projectId } }, body })),
  update: (versionId: string, body: UpdateEndpointBody): Promise<ModelVersion> =>
    call(() => client.PATCH('/api/endpoints/{id}', { params: { path: { id: versionId } }, body })),
  remove: (versionId: string): Promise<void> =>
    call(() => client.DELETE('/api/endpoints/{id}', { params: { path: { id: versionId } } })).then(
      () => undefined,
    ),
  test: (versionId: string): Promise<EndpointTestResult> =>
    call(() => client.POST('/api/endpoints/{id}/test', { params: { path: { id: versionId } } })),
  testDraft: (body: TestDraftEndpointBody): Promise<EndpointTestResult> =>
    call(() => client.POST('/api/endpoints/test', { body })),
};
