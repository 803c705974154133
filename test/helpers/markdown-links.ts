import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

/**
 * The relative links of Markdown files, and which of them lead nowhere: a missing file, or an `#anchor` that no
 * heading of the target Markdown file makes (GitHub's heading ids). Links to other sites are not followed.
 */

export interface MarkdownLink {
  file: string;
  line: number;
  target: string;
}

/** Fenced code blocks and inline code spans blanked out (newlines kept, so line numbers still match). */
function proseOf(text: string): string {
  const lines = text.split('\n');
  let fence: string | null = null;
  const kept = lines.map((line) => {
    const opener = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (fence === null && opener) {
      fence = opener;
      return '';
    }
    if (fence !== null) {
      if (line.trim().startsWith(fence)) fence = null;
      return '';
    }
    return line;
  });
  return kept.join('\n').replace(/(`+)[\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, ''));
}

export function linksOf(file: string): MarkdownLink[] {
  const prose = proseOf(readFileSync(file, 'utf8'));
  const links: MarkdownLink[] = [];
  for (const match of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const line = prose.slice(0, match.index).split('\n').length;
    links.push({ file, line, target: match[1]! });
  }
  return links;
}

/** GitHub's id of a heading: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2, ... */
export function headingIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  // Inline code in a heading keeps its text in the id (`obra view` → obra-view), so its backticks go first.
  const headingsWithoutTicks = markdown.replace(/^(#{1,6}\s.*)$/gm, (heading) => heading.replace(/`/g, ''));
  for (const line of proseOf(headingsWithoutTicks).split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = heading
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    ids.add(count === 0 ? base : `${base}-${count}`);
  }
  return ids;
}

/** Why the link leads nowhere, or null when it resolves (or is not relative). */
export function brokenReason(link: MarkdownLink): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) return null;
  const [path, anchor] = link.target.split('#', 2) as [string, string | undefined];
  const target = path === '' ? link.file : resolve(dirname(link.file), decodeURIComponent(path));
  if (!existsSync(target)) return `no file ${relative(dirname(link.file), target) || target}`;
  if (anchor === undefined || anchor === '') return null;
  if (statSync(target).isDirectory() || !target.endsWith('.md')) return `#${anchor} points into a file that is not Markdown`;
  return headingIds(readFileSync(target, 'utf8')).has(anchor.toLowerCase()) ? null : `no heading makes #${anchor} in ${relative(dirname(link.file), target) || target}`;
}
