import { test as base, expect } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import * as fs from "node:fs";
import { SERVER_LOG } from "../playwright.config";

/** The ERROR lines the server logged after byte `from` of its log (an internal error: a bug). */
function serverErrorsSince(from: number): string[] {
  if (!fs.existsSync(SERVER_LOG)) return [];
  const text = fs.readFileSync(SERVER_LOG).subarray(from).toString("utf8");
  // The level may be wrapped in colour codes.
  return text.split("\n").filter((line) => /\bERROR\b/.test(line.replace(/\x1b\[[0-9;]*m/g, "")));
}
const logSize = () => (fs.existsSync(SERVER_LOG) ? fs.statSync(SERVER_LOG).size : 0);

/**
 * Every journey runs with this `page`: it fails on any uncaught page error or console error,
 * and, when the journey ends, opens each page it visited again and runs axe-core on it
 * (0 serious or critical violations allowed). Last, the server must not have logged an error
 * meanwhile: internal errors reach the browser only as an opaque message, so the log is where
 * a server-side bug (one seen only during server rendering, say) shows.
 *
 * One kind of console error is expected and not a failure: Chromium logs
 * "Failed to load resource: … status of 4xx" for every refusal the server gives on purpose
 * (a wrong password, a missing permission…); the journeys assert those answers themselves.
 */
export const test = base.extend({
  page: async ({ page }, use) => {
    const problems: string[] = [];
    const logStart = logSize();
    // Each problem names the page it happened on.
    const where = () => new URL(page.url()).pathname;
    page.on("pageerror", (e) => problems.push(`${where()}: uncaught page error: ${e.message}`));
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      const text = message.text();
      if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
      problems.push(`${where()}: console error: ${text}`);
    });
    const visited: string[] = [];
    page.on("framenavigated", (frame) => {
      if (frame !== page.mainFrame()) return;
      const url = new URL(frame.url());
      if (url.protocol.startsWith("http") && !visited.includes(url.pathname)) visited.push(url.pathname);
    });

    await use(page);

    expect(problems, "page and console errors").toEqual([]);
    const violations: string[] = [];
    for (const path of visited) {
      await page.goto(path);
      await expect(page.locator("body[data-hydrated]")).toBeAttached();
      const results = await new AxeBuilder({ page }).analyze();
      for (const v of results.violations) {
        if (v.impact === "serious" || v.impact === "critical") {
          violations.push(`${path}: ${v.id} (${v.impact}) on ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
        }
      }
    }
    expect(violations, "axe-core serious/critical violations").toEqual([]);
    expect(problems, "page and console errors while checking accessibility").toEqual([]);
    expect(serverErrorsSince(logStart), "errors in the server log during this journey").toEqual([]);
  },
});

export { expect };
export type { Page } from "@playwright/test";
