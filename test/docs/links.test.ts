import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { brokenReason, headingIds, linksOf } from '../helpers/markdown-links.js';

const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

describe('the docs link only to what exists', () => {
  it('every relative link of README.md and docs/*.md reaches a file, and its #anchor a heading there', () => {
    const links = docs.flatMap((doc) => linksOf(join(ROOT, doc)));
    // The README links every guide, so the walk saw them all.
    expect(links.filter((link) => link.file.endsWith('README.md') && link.target.startsWith('docs/')).length).toBeGreaterThan(10);
    const broken = links.flatMap((link) => {
      const reason = brokenReason(link);
      return reason ? [`${relative(ROOT, link.file)}:${link.line}: (${link.target}) ${reason}`] : [];
    });
    expect(broken).toEqual([]);
  });

  it('finds a missing file, a missing heading and a link written inside code as what they are', () => {
    const dir = mkdtempSync(join(tmpdir(), 'obra-links-'));
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs/guide.md'), '# Guide\n\n## Offline: `obra view`\n\n## Offline: `obra view`\n');
    writeFileSync(
      join(dir, 'README.md'),
      [
        '# Top',
        'See [the guide](docs/guide.md#offline-obra-view), [again](docs/guide.md#offline-obra-view-1) and [up](#top).',
        'A [gone](docs/gone.md) file, a [wrong](docs/guide.md#online) heading, [a site](https://example.org/x.md).',
        '`[not a link](nowhere.md)` and',
        '```',
        '[nor this](nowhere.md)',
        '```',
      ].join('\n'),
    );
    const found = linksOf(join(dir, 'README.md')).map((link) => [link.line, link.target, brokenReason(link)]);
    expect(found).toEqual([
      [2, 'docs/guide.md#offline-obra-view', null],
      [2, 'docs/guide.md#offline-obra-view-1', null],
      [2, '#top', null],
      [3, 'docs/gone.md', 'no file docs/gone.md'],
      [3, 'docs/guide.md#online', 'no heading makes #online in docs/guide.md'],
      [3, 'https://example.org/x.md', null],
    ]);
  });

  it("makes GitHub's heading ids", () => {
    const ids = headingIds("# Many tasks (`npm run bench:fleet`)\n## Hours, not seconds\n### The suite's time\n```\n# not a heading\n```\n");
    expect([...ids]).toEqual(['many-tasks-npm-run-benchfleet', 'hours-not-seconds', 'the-suites-time']);
  });
});
