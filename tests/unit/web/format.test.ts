// The web UI's display helpers (web/src/lib/format.ts): relative times round to the nearest unit, so
// an invitation that expires in 3 days says so a moment after it was made.
import { describe, expect, it } from 'vitest';
import {
  describeUserAgent,
  formatDateTime,
  formatDuration,
  formatNumber,
  formatRelative,
  formatShare,
  ROLE_DESCRIPTIONS,
  ROLE_LABELS,
  ROLES,
} from '../../../web/src/lib/format.js';

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

describe('formatDateTime', () => {
  it('formats a time in the browser locale, a dash for nothing and the text itself for what is not a time', () => {
    const iso = '2026-11-26T14:03:00Z';
    expect(formatDateTime(iso)).toBe(
      new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)),
    );
    expect(formatDateTime(null)).toBe('—');
    expect(formatDateTime(undefined)).toBe('—');
    expect(formatDateTime('soon')).toBe('soon');
  });
});

describe('numbers', () => {
  it('rounds durations under a second to milliseconds and long ones to minutes', () => {
    expect(formatDuration(999.6)).toBe('1000 ms');
    expect(formatDuration(185_000)).toBe('3.1 min');
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(Number.NaN)).toBe('—');
  });

  it('gives shares and numbers the decimals asked for, and a dash for no value', () => {
    expect(formatShare(0.4256, 1)).toBe('42.6%');
    expect(formatShare(Number.NaN)).toBe('—');
    expect(formatNumber(0.12345)).toBe('0.12');
    expect(formatNumber(2, 0)).toBe('2');
    expect(formatNumber(undefined)).toBe('—');
  });
});

describe('roles', () => {
  it('lists every role, most privileged first, each with a label and a description', () => {
    expect(ROLES).toEqual(['ADMIN', 'RESEARCHER', 'RATER']);
    for (const role of ROLES) {
      expect(ROLE_LABELS[role]).toBeTruthy();
      expect(ROLE_DESCRIPTIONS[role]).toBeTruthy();
    }
  });
});

describe('describeUserAgent', () => {
  const chromeLinux =
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
  const edgeWindows =
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0';
  const safariIphone =
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';
  const firefoxMac = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0';

  it('names the browser and the system', () => {
    expect(describeUserAgent(chromeLinux)).toBe('Chrome on Linux');
    expect(describeUserAgent(edgeWindows)).toBe('Edge on Windows');
    expect(describeUserAgent(safariIphone)).toBe('Safari on iOS');
    expect(describeUserAgent(firefoxMac)).toBe('Firefox on macOS');
  });

  it('says what it can of other clients, and the start of an unknown one', () => {
    expect(describeUserAgent('curl/8.5.0')).toBe('curl');
    expect(describeUserAgent(null)).toBe('Unknown device');
    const odd = `python-requests/2.32 ${'x'.repeat(80)}`;
    expect(describeUserAgent(odd)).toBe(odd.slice(0, 60));
  });
});
