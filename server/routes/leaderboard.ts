// A project's leaderboard of policy versions from human votes (Bradley-Terry with bootstrap
// intervals): for those who see results, admins and researchers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import { LeaderboardQuery, LeaderboardSchema } from '../../core/schemas/leaderboard.js';

const STAFF = ['ADMIN', 'RESEARCHER'] as const;

const leaderboard: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/projects/:id/leaderboard',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'getLeaderboard',
        tags: ['rounds'],
        summary:
          'Policy versions ranked by pairwise votes: Bradley-Terry ratings with 95% bootstrap intervals',
        description:
          'Judgments between responses of two different policy versions of the project (gold comparisons left out). ' +
          'Human judgments only unless `include` names simulated or imported ones. A tie or BOTH_BAD counts as half a win ' +
          'for each version. Ratings are on the Elo-like scale (1000 + 400·log10(e)·θ, mean 1000); versions not ' +
          'connected to the ranked ones by comparisons have no rating.',
        params: IdParams,
        querystring: LeaderboardQuery,
        response: { 200: LeaderboardSchema, 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.leaderboard.board(project, request.query);
    },
  );
};
export default leaderboard;
