// @vitest-environment jsdom
// Markdown for untrusted text (web/src/lib/markdown.ts): formatting stays, raw HTML and scripts do
// not, and links open in a new tab without telling the target where they came from.
import { describe, expect, it } from 'vitest';
import { renderMarkdown } from '../../../web/src/lib/markdown.js';

function parse(html: string): HTMLElement {
  const root = document.createElement('div');
  root.innerHTML = html;
  return root;
}

describe('renderMarkdown', () => {
  it('renders markdown: emphasis, code, lists', () => {
    const root = parse(renderMarkdown('Some **bold** and `code`\n\n- one\n- two'));
    expect(root.querySelector('strong')?.textContent).toBe('bold');
    expect(root.querySelector('code')?.textContent).toBe('code');
    expect(root.querySelectorAll('li')).toHaveLength(2);
  });

  it('shows raw HTML as text instead of running it', () => {
    const root = parse(renderMarkdown('<script>alert(1)</script><img src=x onerror=alert(1)>'));
    expect(root.querySelector('script')).toBeNull();
    expect(root.querySelector('img')).toBeNull();
    expect(root.textContent).toContain('<script>alert(1)</script>');
  });

  it('drops script links', () => {
    const root = parse(renderMarkdown('[click](javascript:alert(1))'));
    expect(root.querySelector('a[href^="javascript"]')).toBeNull();
  });

  it('opens links, written or bare, in a new tab with no referrer', () => {
    const root = parse(renderMarkdown('[docs](https://example.com/a) and https://example.org'));
    const links = [...root.querySelectorAll('a')];
    expect(links.map((a) => a.getAttribute('href'))).toEqual([
      'https://example.com/a',
      'https://example.org',
    ]);
    for (const link of links) {
      expect(link.getAttribute('target')).toBe('_blank');
      expect(link.getAttribute('rel')).toBe('noopener noreferrer nofollow');
    }
  });
});
