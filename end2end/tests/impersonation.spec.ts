import { test, expect } from "./fixtures";
import { freshEmail, open, PASSWORD, signIn, signUp, waitForMail } from "./helpers";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";

test("an admin impersonates a user: a banner, a refused password change, stop, both names in the audit log", async ({ page, browser }) => {
  const email = freshEmail("imp");
  const person = await (await browser.newContext()).newPage();
  await signUp(person, email, "Ivy");

  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await open(page, "/admin/users");
  const card = page.getByRole("region", { name: "Impersonate a user" });
  await card.getByLabel("User's email").fill(email);
  await card.getByLabel("Reason").fill("e2e ticket 77");
  await expect(card.getByLabel("Time limit (minutes)")).toHaveValue("30");
  await card.getByRole("button", { name: "Start impersonating" }).click();

  // The console is Ivy's, under a banner naming who acts, on every page.
  await expect(page.getByRole("heading", { name: "Welcome, Ivy" })).toBeVisible();
  const banner = page.getByRole("region", { name: "Impersonation" });
  await expect(banner).toContainText(`${ADMIN_EMAIL} is acting as ${email}`);
  await open(page, "/profile");
  await expect(banner).toBeVisible();
  const password = page.getByRole("region", { name: "Change password" });
  await password.getByLabel("Current password").fill(PASSWORD);
  await password.getByLabel("New password").fill("another long passphrase");
  await password.getByRole("button", { name: "Change password" }).click();
  await expect(password.getByRole("alert")).toContainText("not while impersonating");

  // Ivy is told.
  await waitForMail(email, "e2e ticket 77");

  await banner.getByRole("button", { name: "Stop impersonating" }).click();
  await expect(page.getByRole("heading", { name: "Users" })).toBeVisible();
  await expect(page.getByRole("region", { name: "Impersonation" })).toHaveCount(0);

  // The audit log of the instance holds both names.
  await open(page, "/audit");
  // The instance's own organization holds user administration; the page reloads into it.
  await Promise.all([
    page.waitForEvent("load"),
    page.getByLabel("Active organization").selectOption({ label: "Keyward" }),
  ]);
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
  const filters = page.getByRole("search", { name: "Filter the audit log" });
  await filters.getByLabel("Action").fill("user.impersonation");
  await filters.getByLabel("Action").press("Enter");
  const log = page.getByRole("table", { name: "Audit log" });
  for (const action of ["user.impersonation_started", "user.impersonation_ended"]) {
    const row = log.getByRole("row", { name: new RegExp(action) });
    await expect(row.getByRole("cell", { name: ADMIN_EMAIL, exact: true })).toBeVisible();
    await expect(row.getByRole("cell", { name: email, exact: true })).toBeVisible();
  }
  await filters.getByLabel("Action").fill("impersonation.call");
  await filters.getByLabel("Action").press("Enter");
  await expect(log.getByRole("row", { name: /impersonation\.call/ }).first().getByRole("cell", { name: email, exact: true })).toBeVisible();

  // Ivy's own activity log on her profile says who acted as her.
  await open(person, "/profile");
  const activity = person.getByRole("table", { name: "Your activity" });
  await expect(activity.getByRole("row", { name: new RegExp(`user\\.impersonation_started.*${ADMIN_EMAIL}`) })).toBeVisible();
});
