import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'puppeteer-core';
import { launchBrowser, openTab, startDashboard, trainSmallTask, visit, type Dashboard } from '../helpers/browser.js';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

// axe-core (the engine behind Lighthouse's accessibility audit) on every page, at WCAG 2 A and AA:
// labels, names, roles, landmarks and colour contrast, in the light scheme and the dark one.
describe('the dashboard is accessible (axe-core, WCAG 2 A and AA)', { timeout: 600_000 }, () => {
  let server: Dashboard;
  let browser: Browser;
  let taskId: string;
  before(async () => {
    server = await startDashboard('a11y');
    taskId = (await trainSmallTask(server, 'AXETOK')).task.id;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const scheme of ['light', 'dark'] as const) {
    test(`every page has no violation in the ${scheme} scheme`, async () => {
      const tab = await openTab(browser);
      // The page's policy allows its own scripts only; the audit is injected from outside it.
      await tab.page.setBypassCSP(true);
      await tab.page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
      await tab.page.goto(`${server.baseUrl}/#token=${server.token}`, { waitUntil: 'domcontentloaded' });
      const pages: [string, string][] = [
        ['/', 'list'],
        [`/tasks/${taskId}`, 'task'],
        ['/new', 'new'],
        ['/generate', 'generate'],
        ['/usage', 'usage'],
      ];
      const found: string[] = [];
      for (const [urlPath, name] of pages) {
        await visit(tab, server.baseUrl, urlPath, name);
        await tab.page.addScriptTag({ path: AXE });
        const violations = await tab.page.evaluate(async () => {
          const axe = (window as unknown as { axe: { run(context: Document, options: object): Promise<{ violations: Violation[] }> } }).axe;
          const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
          return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
        });
        for (const v of violations) found.push(`${urlPath}: ${v.id} (${v.impact}) ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
      }
      assert.deepEqual(found, [], found.join('\n'));
      assert.deepEqual(tab.problems, []);
      await tab.page.close();
    });
  }

  test('the sign-in form too; and the audit does find a fault when there is one', async () => {
    const tab = await openTab(browser);
    await tab.page.setBypassCSP(true);
    await visit(tab, server.baseUrl, '/', 'sign-in');
    await tab.page.addScriptTag({ path: AXE });
    const audit = () =>
      tab.page.evaluate(async () => {
        const axe = (window as unknown as { axe: { run(context: Document, options: object): Promise<{ violations: { id: string }[]; passes: unknown[] }> } }).axe;
        const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
        return { violations: result.violations.map((v) => v.id), passes: result.passes.length };
      });
    const clean = await audit();
    assert.deepEqual(clean.violations, []);
    assert.ok(clean.passes > 5, `axe checked ${clean.passes} rules`);
    // A control: an unlabelled field added to the page is reported.
    await tab.page.evaluate(() => document.querySelector('form')!.append(document.createElement('input')));
    assert.ok((await audit()).violations.includes('label'));
    await tab.page.close();
  });
});
