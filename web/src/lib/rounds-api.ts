// Typed client for training rounds, their live events, policy versions and a project's schedule.
import type {
  Algorithm,
  CreateRoundBody,
  PolicyVersion,
  Project,
  PromotionEvidence,
  Round,
  RoundEvent,
  Schedule,
} from '$shared/index.js';
import { byId, call, client, query } from './api.js';

export const roundsApi = {
  /** Newest first. */
  rounds: (projectId: string): Promise<Round[]> =>
    call(() => client.GET('/api/projects/{id}/rounds', { params: byId(projectId) })),
  /** 409 when a round is already queued or running, or the project has no promoted version. */
  launch: (projectId: string, body: CreateRoundBody): Promise<Round> =>
    call(() => client.POST('/api/projects/{id}/rounds', { params: byId(projectId), body })),
  round: (roundId: string): Promise<Round> =>
    call(() => client.GET('/api/rounds/{id}', { params: byId(roundId) })),
  /** Ascending; pass the last id seen as `after` to get only newer events. */
  events: (roundId: string, after?: string, limit?: number): Promise<RoundEvent[]> =>
    call(() =>
      client.GET('/api/rounds/{id}/events', {
        params: { path: { id: roundId }, query: query({ after, limit }) },
      }),
    ),
  cancel: (roundId: string): Promise<Round> =>
    call(() => client.POST('/api/rounds/{id}/cancel', { params: byId(roundId) })),
  /** Oldest first, with lineage (parentId) and which one is current. */
  versions: (projectId: string): Promise<PolicyVersion[]> =>
    call(() => client.GET('/api/projects/{id}/policy-versions', { params: byId(projectId) })),
  /** Both promotion rules for every version with a parent, and the project's promotion settings. */
  promotion: (projectId: string): Promise<PromotionEvidence> =>
    call(() => client.GET('/api/projects/{id}/promotion', { params: byId(projectId) })),
  /** Promoting an earlier version is a roll back. */
  promote: (versionId: string): Promise<PolicyVersion> =>
    call(() => client.POST('/api/policy-versions/{id}/promote', { params: byId(versionId) })),
  updateSchedule: (projectId: string, schedule: Schedule): Promise<Project> =>
    call(() => client.PATCH('/api/projects/{id}', { params: byId(projectId), body: { schedule } })),
};

/** The algorithms a round can use, with a one-line explanation each (RLOO is the server's default). */
export const ALGORITHMS: readonly { value: Algorithm; label: string; description: string }[] = [
  {
    value: 'RLOO',
    label: 'RLOO',
    description:
      'REINFORCE with a leave-one-out baseline: several samples per prompt, each judged against the others. The default.',
  },
  {
    value: 'PPO',
    label: 'PPO',
    description:
      'Proximal policy optimization: clipped updates with a learned value baseline; the classic RLHF.',
  },
  {
    value: 'GRPO',
    label: 'GRPO',
    description:
      'Group-relative policy optimization: rewards normalized within each prompt’s group of samples.',
  },
  {
    value: 'DPO',
    label: 'DPO',
    description: 'Direct preference optimization: learns from the judgments themselves, no sampling loop.',
  },
  {
    value: 'BEST_OF_N',
    label: 'Best-of-n',
    description: 'Samples n responses per prompt and fine-tunes on the one the reward model likes best.',
  },
];

export function algorithmLabel(value: string): string {
  return ALGORITHMS.find((a) => a.value === value)?.label ?? value;
}

/** The trainer's defaults (the form's starting values) and the round's phases (the stepper's steps). */
export { ROUND_DEFAULTS, ROUND_PHASES as PHASES } from '$shared/round-defaults.js';

/** The server's answer to a launch while another round is active (shown before trying). */
export const ROUND_ACTIVE_MESSAGE = 'A round of this project is already queued or running.';

export function isActive(round: Pick<Round, 'status'>): boolean {
  return round.status === 'QUEUED' || round.status === 'RUNNING';
}

/** A metric as a finite number, or null. */
export function metric(metrics: Record<string, unknown> | undefined, key: string): number | null {
  const value = metrics?.[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
