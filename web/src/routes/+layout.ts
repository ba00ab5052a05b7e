// Loom's web app is a pure single-page app: the API server serves build/index.html for every page.
import { loadSession } from '../lib/auth.js';

export const ssr = false;
export const prerender = false;

export async function load(): Promise<void> {
  // Resolve who is signed in (GET /api/auth/me) once, before the first page renders.
  await loadSession();
}
