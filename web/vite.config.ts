// Vite + SvelteKit config for the Loom web app (a pure SPA served by the API server from web/build).
// SvelteKit 3 reads its options from the `sveltekit(...)` plugin; a svelte.config.js is no longer supported.
import { fileURLToPath } from 'node:url';
import adapter from '@sveltejs/adapter-static';
import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

/** Shared TypeBox schemas of the server; the web app imports their types (and a few constants). */
const shared = fileURLToPath(new URL('../core/schemas', import.meta.url));

export default defineConfig({
  plugins: [
    sveltekit({
      adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html' }),
      // The fallback page is served for every deep link (/admin/users, /invite, ...), so asset
      // URLs must be absolute.
      paths: { relative: false },
    }),
  ],
  resolve: { alias: { $shared: shared } },
  server: {
    fs: { allow: ['..'] },
    // `npm run dev` in web/ talks to a locally running API server.
    proxy: { '/api': process.env.LOOM_API ?? 'http://127.0.0.1:3000' },
  },
});
