// The TRL worker's own tests (Python's standard library unittest: protocol client against an
// in-process fake server, the work loop, config mapping to TRL's arguments), run as part of
// the suite so CI runs them; they import no torch.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');

describe('trainer/trl (Python)', () => {
  it('passes python3 -m unittest discover trainer/trl/tests', () => {
    const result = spawnSync('python3', ['-m', 'unittest', 'discover', 'trainer/trl/tests'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    expect(result.error, 'python3 must be installed').toBeUndefined();
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/Ran \d+ tests/);
    expect(result.stderr).toMatch(/\nOK\s*$/);
    expect(Number(/Ran (\d+) tests/.exec(result.stderr)![1])).toBeGreaterThanOrEqual(20);
  }, 130_000);
});
