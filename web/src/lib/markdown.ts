// Markdown for untrusted text (model output, prompts, guidelines): markdown-it with raw HTML off,
// then DOMPurify. The result is only ever inserted by components/Markdown.svelte.
import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, breaks: false });

let hooked = false;

function hookOnce(): void {
  if (hooked) return;
  hooked = true;
  // Links from model output open in a new tab and tell the target nothing about Loom.
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer nofollow');
    }
  });
}

/** Safe HTML for `text` rendered as markdown. */
export function renderMarkdown(text: string): string {
  hookOnce();
  return DOMPurify.sanitize(md.render(text), {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object', 'embed'],
    FORBID_ATTR: ['style'],
    ALLOW_DATA_ATTR: false,
  });
}
