// The web UI's display helpers (web/src/lib/format.ts): relative times round to the nearest unit, so
// an invitation that expires in 3 days says so a moment after it was made.
import { describe, expect, it } from 'vitest';
import { formatDuration, formatRelative, formatShare } from '../../web/src/lib/format.js';

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;
const now = Date.parse('2026-12-04T12:00:00Z');
const at = (ms: number) => new Date(now + ms).toISOString();

describe('formatRelative', () => {
  it('says "in 3 days" for a 3-day invitation read a moment later', () => {
    // Created at `now - 2 s`, expiring 3 days after its creation.
    expect(formatRelative(at(3 * DAY - 2 * SECOND), now)).toBe(relative.format(3, 'day'));
    expect(formatRelative(at(3 * DAY), now)).toBe(relative.format(3, 'day'));
  });

  it('rounds to the nearest whole unit, in the past too', () => {
    expect(formatRelative(at(-(2 * HOUR - 30 * SECOND)), now)).toBe(relative.format(-2, 'hour'));
    expect(formatRelative(at(-(2 * DAY + 20 * HOUR)), now)).toBe(relative.format(-3, 'day'));
    expect(formatRelative(at(14 * DAY - HOUR), now)).toBe(relative.format(2, 'week'));
    expect(formatRelative(at(90 * SECOND), now)).toBe(relative.format(2, 'minute'));
  });

  it('says "just now" under a minute, and a dash or the text itself for what is not a time', () => {
    expect(formatRelative(at(-20 * SECOND), now)).toBe('just now');
    expect(formatRelative(null, now)).toBe('—');
    expect(formatRelative('not a date', now)).toBe('not a date');
  });
});

describe('other formats', () => {
  it('formats durations and shares', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_400)).toBe('12.4 s');
    expect(formatShare(0.421)).toBe('42%');
    expect(formatShare(null)).toBe('—');
  });
});
