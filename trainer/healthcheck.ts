// Container health check of the trainer worker: healthy while its heartbeat file is fresh.
import { statSync } from 'node:fs';
import path from 'node:path';

const file = path.join(path.resolve(process.env.DATA_DIR ?? './data'), 'trainer-heartbeat');
try {
  const age = Date.now() - statSync(file).mtimeMs;
  process.exit(age < 60_000 ? 0 : 1);
} catch {
  process.exit(1);
}
