// Display helpers for timestamps and roles.
// A relative path (not $shared) so that the unit tests, outside the web build, type-check it too.
import type { Role } from '../../../core/schemas/index.js';

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "26 Nov 2026, 14:03", or a dash for null. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

/**
 * "3 hours ago", "in 2 days", "just now"; a dash for null. Rounded to the nearest whole unit: an
 * invitation made a moment ago for 3 days is "in 3 days", not "in 2 days" (2.9999 days truncated).
 */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—';
  const time = new Date(iso).getTime();
  if (Number.isNaN(time)) return iso;
  const seconds = Math.round((time - now) / 1000);
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return 'just now';
}

export const ROLE_LABELS: Record<Role, string> = {
  ADMIN: 'Admin',
  RESEARCHER: 'Researcher',
  RATER: 'Rater',
};

/**
 * Every role, most privileged first. Kept here (typed against the shared schema) rather than imported
 * from $shared at runtime, so the browser bundle does not pull in the TypeBox runtime.
 */
export const ROLES = Object.keys(ROLE_LABELS) as Role[];

export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  ADMIN: 'Manages users, invitations, training and the audit log.',
  RESEARCHER: 'Uses API tokens to export data and run experiments.',
  RATER: 'Compares pairs of model responses.',
};

/** A short, readable summary of a browser user agent ("Chrome on Linux"). */
export function describeUserAgent(ua: string | null): string {
  if (!ua) return 'Unknown device';
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrome\/|Chromium\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : /curl\//i.test(ua)
            ? 'curl'
            : null;
  const os = /Windows/.test(ua)
    ? 'Windows'
    : /Android/.test(ua)
      ? 'Android'
      : /iPhone|iPad/.test(ua)
        ? 'iOS'
        : /Mac OS X|Macintosh/.test(ua)
          ? 'macOS'
          : /Linux/.test(ua)
            ? 'Linux'
            : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? os ?? ua.slice(0, 60);
}

/** "42%", or a dash for null. */
export function formatShare(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return `${(value * 100).toFixed(digits)}%`;
}

/** A number with fixed decimals, or a dash for null. */
export function formatNumber(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return value.toFixed(digits);
}

/** "850 ms", "12.4 s", "3.1 min"; a dash for null. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/** Llama 2's four strength levels, strongest first (the server's default; copied so no TypeBox runtime). */
export const DEFAULT_STRENGTHS = [
  'Significantly better',
  'Better',
  'Slightly better',
  'Negligibly better / unsure',
];
