import { test, expect, Page } from "./fixtures";
import { createReadOnlyKey, freshEmail, open, signUp } from "./helpers";

// The browser runs in Berlin; the user may choose another zone for every date and chart.
test.use({ timezoneId: "Europe/Berlin" });

/** How the console writes `iso` in `zone`: `YYYY-MM-DD HH:MM` and the zone's short name. */
function shown(iso: string, zone: string): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  }).formatToParts(new Date(iso));
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")} ${get("timeZoneName")}`;
}

async function created(page: Page) {
  const time = page.getByLabel("Key facts").getByRole("time").first();
  const iso = await time.getAttribute("datetime");
  expect(iso).toMatch(/^\d{4}-\d\d-\d\dT/);
  return { time, iso: iso! };
}

test("preferences: dates follow the chosen time zone, the theme follows the choice, a bad zone is refused", async ({ page }) => {
  await signUp(page, freshEmail("tz"), "Tess");
  await createReadOnlyKey(page, "zoned key");
  await page.getByRole("table", { name: "API keys" }).getByRole("link", { name: "zoned key" }).click();
  let { time, iso } = await created(page);
  const keyUrl = page.url();
  // No preference: the browser's zone, after moving within the app and on a fresh load of a
  // lazily loaded page (hydration keeps the server's UTC text until the date switches).
  await expect(time).toHaveText(shown(iso, "Europe/Berlin"));
  await open(page, keyUrl);
  ({ time, iso } = await created(page));
  await expect(time).toHaveText(shown(iso, "Europe/Berlin"));

  await open(page, "/profile");
  const prefs = page.getByRole("region", { name: "Preferences" });
  await prefs.getByLabel("Time zone").fill("America/New_York");
  await prefs.getByLabel("Theme").selectOption("dark");
  await prefs.getByRole("button", { name: "Save preferences" }).click();
  await expect(prefs.getByRole("status")).toHaveText("Preferences saved.");
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  await expect(prefs.getByRole("time")).toContainText(/E[SD]T/);

  await open(page, keyUrl);
  ({ time, iso } = await created(page));
  await expect(time).toHaveText(shown(iso, "America/New_York"));
  // The server renders the next page dark already (before any script ran).
  const html = await (await page.request.get("/profile")).text();
  expect(html).toContain('data-theme="dark"');

  // An unknown zone is refused readably, and nothing changes.
  await open(page, "/profile");
  await prefs.getByLabel("Time zone").fill("Mars/Olympus_Mons");
  await prefs.getByRole("button", { name: "Save preferences" }).click();
  await expect(prefs.getByRole("alert")).toContainText("not a known time zone");
  await open(page, keyUrl);
  ({ time, iso } = await created(page));
  await expect(time).toHaveText(shown(iso, "America/New_York"));

  // Back to the browser's zone and the light theme.
  await open(page, "/profile");
  await prefs.getByLabel("Time zone").fill("");
  await prefs.getByLabel("Theme").selectOption("light");
  await prefs.getByRole("button", { name: "Save preferences" }).click();
  await expect(prefs.getByRole("status")).toHaveText("Preferences saved.");
  await expect(page.locator("html")).toHaveAttribute("data-theme", "light");
  await open(page, keyUrl);
  ({ time, iso } = await created(page));
  await expect(time).toHaveText(shown(iso, "Europe/Berlin"));
});
