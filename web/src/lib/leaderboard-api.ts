// Typed client for a project's leaderboard (Bradley-Terry ratings of its policy versions from votes).
import type { Leaderboard, LeaderboardSource } from '$shared/leaderboard.js';
import { call, client, query } from './api.js';

export const leaderboardApi = {
  /** Human judgments only, plus the sources named in `include`. */
  leaderboard: (projectId: string, include: readonly LeaderboardSource[] = []): Promise<Leaderboard> =>
    call(() =>
      client.GET('/api/projects/{id}/leaderboard', {
        params: { path: { id: projectId }, query: query({ include: include.join(',') || undefined }) },
      }),
    ),
};
