import { lookupLink } from '../../lib/invite.js';
import type { PageLoad } from './$types';

export const load: PageLoad = async ({ url }) => ({ link: await lookupLink(url) });
