import { requireSignedIn } from '../../../../lib/auth.js';
import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => requireSignedIn(url);
