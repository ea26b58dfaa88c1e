import { test, expect } from "./fixtures";
import { open, freshEmail, signUp, signIn, signOut, PASSWORD, requestSignUp, confirmationLink, waitForMail } from "./helpers";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";

test("sign up, sign out, sign in again", async ({ page }) => {
  const email = freshEmail("ann");
  await signUp(page, email, "Ann");
  // The home page shows real data: the personal organization and the role in it.
  const orgs = page.getByRole("table");
  await expect(orgs.getByRole("row", { name: /Ann \(personal\).*owner/ })).toBeVisible();

  await signOut(page);
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, Ann" })).toBeVisible();
});

test("a wrong password shows the generic error and stays on the page", async ({ page }) => {
  const email = freshEmail("bob");
  await signUp(page, email, "Bob");
  await signOut(page);

  await signIn(page, email, "not the right password");
  await expect(page.getByRole("alert")).toHaveText("invalid email or password");
  await expect(page).toHaveURL(/\/sign-in$/);

  // An unknown account gets exactly the same answer.
  await signIn(page, freshEmail("nobody"), "not the right password");
  await expect(page.getByRole("alert")).toHaveText("invalid email or password");
});

test("the page is hydrated: a client-side interaction works without a reload", async ({ page }) => {
  await open(page, "/sign-in");
  const password = page.getByLabel("Password", { exact: true });
  await expect(password).toHaveAttribute("type", "password");
  // Survives only if no navigation happens: a reload would reset the field.
  await password.fill("visible text");
  // A document request is a reload (Playwright also reports same-document navigations as
  // `framenavigated`, so those cannot tell the two apart).
  let documents = 0;
  page.on("request", (r) => {
    if (r.resourceType() === "document") documents++;
  });
  await page.evaluate(() => {
    (window as unknown as { sameDocument: boolean }).sameDocument = true;
  });
  await page.getByRole("button", { name: "Show password" }).click();
  await expect(password).toHaveAttribute("type", "text");
  await expect(page.getByRole("button", { name: "Hide password" })).toHaveAttribute("aria-pressed", "true");
  await expect(password).toHaveValue("visible text");
  // Client-side routing: following a link does not reload the document.
  await page.getByRole("link", { name: "Sign up" }).first().click();
  await expect(page.getByRole("heading", { name: "Create your account" })).toBeVisible();
  await expect(page).toHaveURL(/\/sign-up$/);
  expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
  expect(documents).toBe(0);
});

test("a member sees no admin menu and is refused the admin function", async ({ page }) => {
  const email = freshEmail("member");
  await signUp(page, email, "Mia");
  const nav = page.getByRole("navigation", { name: "Main" });
  await expect(nav.getByRole("link", { name: "Home" })).toBeVisible();
  await expect(nav.getByRole("link", { name: "Users" })).toHaveCount(0);

  // Calling the admin server function directly, with the member's session, is refused.
  const origin = new URL(page.url()).origin;
  const res = await page.request.post("/rpc/list_users", {
    headers: { Origin: origin, "Content-Type": "application/x-www-form-urlencoded" },
    data: "",
  });
  expect(res.status()).toBe(403);
  expect(await res.json()).toEqual({ error: { code: "forbidden", message: "missing permission: users:read" } });

  // Visiting the page by URL shows the refusal, not the data.
  await open(page, "/admin/users");
  await expect(page.getByRole("alert")).toHaveText("missing permission: users:read");
  await expect(page.getByRole("cell", { name: ADMIN_EMAIL })).toHaveCount(0);
});

test("the bootstrapped admin sees the Users menu and the user list", async ({ page }) => {
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  const nav = page.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Users" }).click();
  await expect(page.getByRole("heading", { name: "Users" })).toBeVisible();
  // The list is paged, newest first: other journeys' users may fill the first page.
  await page.getByRole("search", { name: "Filter users" }).getByLabel("Search").fill(ADMIN_EMAIL);
  await expect(page.getByRole("row", { name: new RegExp(`${ADMIN_EMAIL}.*owner`) })).toBeVisible();
});

test("sign-up confirms the address by link, and answers alike for a registered address", async ({ page }) => {
  const email = freshEmail("cara");
  await requestSignUp(page, email, "Cara");
  // Not usable before the link: even the right password gets the usual answer.
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("alert")).toHaveText("invalid email or password");
  // The link wants the password chosen at sign-up.
  const link = await confirmationLink(email);
  await open(page, link);
  await page.getByLabel("Password", { exact: true }).fill("not the password at all");
  await page.getByRole("button", { name: "Confirm and sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("invalid email or password");
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Confirm and sign in" }).click();
  await expect(page.getByRole("heading", { name: "Welcome, Cara" })).toBeVisible();
  await signOut(page);

  // Signing up again with the same address: the very same answer, and nothing changes; the
  // owner of the address is told by email instead.
  await requestSignUp(page, email, "Impostor", "another long passphrase");
  await waitForMail(email, "already has one");
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, Cara" })).toBeVisible();
});
