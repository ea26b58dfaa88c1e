import { test, expect, Page } from "./fixtures";
import { Browser } from "@playwright/test";
import { freshEmail, open, PASSWORD, signUp, waitForMail, openCreateKeyForm } from "./helpers";

/** Creates a team organization from the members page; it becomes the active one. */
async function createOrganization(page: Page, name: string) {
  await open(page, "/members");
  const form = page.getByRole("region", { name: "Create an organization" });
  await form.getByLabel("Organization name").fill(name);
  await form.getByRole("button", { name: "Create organization" }).click();
  // The page reloads with the new organization active.
  await expect(page.getByRole("combobox", { name: "Active organization" })).toHaveValue(/org_/);
  await expect(page.getByRole("combobox", { name: "Active organization" }).getByRole("option", { selected: true })).toHaveText(name);
}

/** Invites `email` with `role` from the members page of the active organization. */
async function invite(page: Page, email: string, role: string) {
  const form = page.getByRole("region", { name: "Invite a member" });
  await form.getByLabel("Email").fill(email);
  await form.getByLabel("Role").selectOption(role);
  await form.getByRole("button", { name: "Send invitation" }).click();
  await expect(form.getByRole("status")).toHaveText(`Invitation sent to ${email}.`);
  await expect(page.getByRole("table", { name: "Pending invitations" }).getByRole("cell", { name: email, exact: true })).toBeVisible();
}

/** The invitation link from the email sent to `email`. */
async function invitationLink(email: string, org: string): Promise<string> {
  const mail = await waitForMail(email, `join ${org}`);
  const link = mail.match(/https?:\/\/\S+\/invite\?token=\S+/);
  expect(link, mail).not.toBeNull();
  return link![0];
}

/** Accepts an invitation in a browser of its own, creating the account. */
async function acceptAsNewcomer(browser: Browser, link: string, name: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(link);
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
  await page.getByLabel("Display name").fill(name);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account and accept" }).click();
  await expect(page.getByRole("heading", { name: "Members" })).toBeVisible();
  return page;
}

test("invite a member through the emailed link, accept, and transfer ownership", async ({ page, browser }) => {
  const org = `Acme ${Date.now()}`;
  await signUp(page, freshEmail("owner"), "Olive");
  await createOrganization(page, org);
  const newcomer = freshEmail("newcomer");
  await invite(page, newcomer, "admin");

  const link = await invitationLink(newcomer, org);
  const theirs = await acceptAsNewcomer(browser, link, "Nico");
  // They joined as admin, with the organization active.
  const members = theirs.getByRole("table", { name: "Members" });
  await expect(members.getByRole("row", { name: /Nico/ })).toContainText("admin");
  // The link works once.
  const again = await (await browser.newContext()).newPage();
  await again.goto(link);
  await expect(again.getByRole("alert")).toContainText("This invitation was used");

  // The owner sees the new member and hands the organization over.
  await open(page, "/members");
  await expect(page.getByRole("table", { name: "Pending invitations" })).toHaveCount(0);
  const transfer = page.getByRole("region", { name: "Transfer ownership" });
  await transfer.getByLabel("New owner").selectOption({ label: newcomer });
  await transfer.getByRole("button", { name: "Transfer ownership" }).click();
  await expect(page.getByRole("table", { name: "Members" }).getByRole("row", { name: /Nico/ })).toContainText("owner");
  await expect(page.getByRole("table", { name: "Members" }).getByRole("row", { name: /Olive/ })).toContainText("admin");
  await expect(page.getByRole("region", { name: "Transfer ownership" })).toHaveCount(0);
  // The used link, opened by the former owner: refused, readably (and checked by axe).
  await open(page, link);
  await expect(page.getByRole("alert")).toContainText("This invitation was used");
});

test("assign a custom role to two members in bulk; a viewer sees only viewer menus and is refused on a direct call", async ({ page, browser }) => {
  const org = `Bulk ${Date.now()}`;
  await signUp(page, freshEmail("lead"), "Lena");
  await createOrganization(page, org);
  const [a, b] = [freshEmail("ava"), freshEmail("ben")];
  await invite(page, a, "viewer");
  await invite(page, b, "viewer");
  const ava = await acceptAsNewcomer(browser, await invitationLink(a, org), "Ava");
  await acceptAsNewcomer(browser, await invitationLink(b, org), "Ben");

  // A custom role in the organization (the roles page opens on the active one).
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Roles" }).click();
  const create = page.getByRole("region", { name: "Create a role" });
  await create.getByLabel("Name").fill("support");
  await create.getByLabel("Inherits from").selectOption({ label: "viewer" });
  await create.getByRole("button", { name: "Create role" }).click();
  await expect(page.getByRole("region", { name: "Role support" })).toBeVisible();

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Members" }).click();
  const table = page.getByRole("table", { name: "Members" });
  await table.getByRole("checkbox", { name: `Select ${a}` }).check();
  await table.getByRole("checkbox", { name: `Select ${b}` }).check();
  const bulk = page.getByRole("region", { name: "Assign a custom role" });
  await bulk.getByLabel("Custom role").selectOption({ label: "support" });
  await bulk.getByRole("button", { name: "Assign to selected" }).click();
  const results = bulk.getByRole("table", { name: "Assignment results" });
  await expect(results.getByRole("row", { name: `${a} assigned` })).toBeVisible();
  await expect(results.getByRole("row", { name: `${b} assigned` })).toBeVisible();
  await expect(table.getByRole("row", { name: /Ava/ })).toContainText("support");
  await expect(table.getByRole("row", { name: /Ben/ })).toContainText("support");

  // Ava is a viewer here: her menus are a viewer's, and the page offers no change.
  await ava.reload();
  await expect(ava.locator("body[data-hydrated]")).toBeAttached();
  const nav = ava.getByRole("navigation", { name: "Main" });
  for (const link of ["Home", "API keys", "Usage", "Members", "Roles", "Plans", "API docs"]) {
    await expect(nav.getByRole("link", { name: link, exact: true })).toBeVisible();
  }
  for (const link of ["Users", "Email outbox", "Settings"]) {
    await expect(nav.getByRole("link", { name: link, exact: true })).toHaveCount(0);
  }
  // The members page is there (her own row listed), without the controls that change it.
  await expect(ava.getByRole("table", { name: "Members" }).getByRole("row", { name: /Ava/ })).toBeVisible();
  await expect(ava.getByRole("region", { name: "Invite a member" })).toHaveCount(0);
  await expect(ava.getByRole("region", { name: "Assign a custom role" })).toHaveCount(0);
  await expect(ava.getByRole("table", { name: "Members" }).getByRole("button", { name: /Remove/ })).toHaveCount(0);
  // Calling the server directly anyway: refused for the permission (not, say, the CSRF check).
  const orgId = await ava.getByRole("combobox", { name: "Active organization" }).inputValue();
  const answer = await ava.evaluate(async (organization_id) => {
    const r = await fetch("/rpc/invite_member", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ organization_id, email: "sneaky@example.org", role: "admin" }),
    });
    return { status: r.status, body: await r.json() };
  }, orgId);
  expect(answer.status).toBe(403);
  expect(answer.body.error.code).toBe("forbidden");
  expect(answer.body.error.message).toContain("members:write");
});

test("an owner limits key lifetime in the settings; a key without expiry is then refused", async ({ page }) => {
  const org = `Policy ${Date.now()}`;
  await signUp(page, freshEmail("pol"), "Polly");
  await createOrganization(page, org);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings" }).click();
  const policies = page.getByRole("region", { name: "Policies" });
  await policies.getByLabel("Maximum key lifetime (days)").fill("30");
  await policies.getByRole("button", { name: "Save policies" }).click();
  await expect(policies.getByRole("status")).toHaveText("Policies saved.");

  await open(page, "/keys");
  await openCreateKeyForm(page);
  const form = page.getByRole("region", { name: "Create an API key" });
  await form.getByLabel("Name").fill("forever");
  await form.getByRole("button", { name: "Create" }).click();
  await expect(page.getByRole("alert")).toContainText("this organization's keys must expire within 30 days");
  await form.getByLabel("Expires in (days)").fill("30");
  await form.getByRole("button", { name: "Create" }).click();
  await expect(page.getByRole("region", { name: "New API key" })).toBeVisible();
});

test("with approval required, a member's new key waits until an admin approves it", async ({ page, browser }) => {
  const org = `Approvals ${Date.now()}`;
  await signUp(page, freshEmail("appr"), "Abe");
  await createOrganization(page, org);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings" }).click();
  const policies = page.getByRole("region", { name: "Policies" });
  await policies.getByLabel(/Require approval of new keys/).check();
  await policies.getByRole("button", { name: "Save policies" }).click();
  await expect(policies.getByRole("status")).toHaveText("Policies saved.");

  await open(page, "/members");
  const newcomer = freshEmail("maker");
  await invite(page, newcomer, "member");
  const member = await acceptAsNewcomer(browser, await invitationLink(newcomer, org), "Mia");

  // The member creates a key: shown once, with word that it waits.
  await open(member, "/keys");
  await member.getByLabel("Organization", { exact: true }).selectOption({ label: org });
  await openCreateKeyForm(member);
  const form = member.getByRole("region", { name: "Create an API key" });
  await form.getByLabel("Name").fill("mia's worker");
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = member.getByRole("region", { name: "New API key" });
  await expect(reveal.getByRole("note")).toContainText("works once an owner or admin approves it");
  const secret = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  const row = member.getByRole("table", { name: "API keys" }).getByRole("row", { name: /mia's worker/ });
  await expect(row).toContainText("pending");
  // She cannot approve it herself: the page offers no such control.
  await expect(row.getByRole("button", { name: /Approve/ })).toHaveCount(0);
  // The key does not work yet.
  const refused = await member.request.get("/api/v1/keys", { headers: { Authorization: `Bearer ${secret}` } });
  expect(refused.status()).toBe(401);
  expect((await refused.json()).error.code).toBe("key_pending_approval");

  // The owner finds it under "Pending approval" and approves it.
  await open(page, "/keys");
  await page.getByLabel("Organization", { exact: true }).selectOption({ label: org });
  await page.getByRole("search", { name: "Filter keys" }).getByLabel("Status").selectOption("Pending approval");
  const pending = page.getByRole("table", { name: "API keys" }).getByRole("row", { name: /mia's worker/ });
  await expect(pending).toContainText("pending");
  // While the owner looks, Mia reshapes it: approving what the owner saw is refused with word
  // why, and the list then shows the key as it is now.
  await member.getByRole("table", { name: "API keys" }).getByRole("link", { name: "mia's worker" }).click();
  const settings = member.getByRole("region", { name: "Settings" });
  await settings.getByLabel("Name").fill("mia's worker v2");
  await settings.getByRole("button", { name: "Save changes" }).click();
  await expect(member.getByRole("heading", { name: "mia's worker v2", level: 1 })).toBeVisible();
  // Approve first shows everything approving hands out, as the owner's list loaded it.
  await pending.getByRole("button", { name: "Approve mia's worker", exact: true }).click();
  const stale = page.getByRole("group", { name: "Approve mia's worker?" });
  await stale.getByRole("button", { name: "Confirm approval" }).click();
  await expect(page.getByRole("alert")).toContainText("changed while you reviewed it");
  const current = page.getByRole("table", { name: "API keys" }).getByRole("row", { name: /mia's worker v2/ });
  await current.getByRole("button", { name: "Approve mia's worker v2", exact: true }).click();
  const confirm = page.getByRole("group", { name: "Approve mia's worker v2?" });
  const grants = confirm.getByRole("definition");
  await expect(grants).toHaveText([
    "organization", "live", "basic", "keys: write, org: read", "none", "any its scopes allow",
    "any address", "not required", "never", "the free plan's",
  ]);
  await expect(confirm.getByRole("term")).toHaveText([
    "Owner", "Environment", "Access", "Scopes", "Service permissions", "Endpoints",
    "IP allow-list", "Signed requests", "Expires", "Rate limit",
  ]);
  // Cancel approves nothing: the key still waits.
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await expect(confirm).toHaveCount(0);
  await expect(current).toContainText("pending");
  await current.getByRole("button", { name: "Approve mia's worker v2", exact: true }).click();
  await confirm.getByRole("button", { name: "Confirm approval" }).click();
  await expect(page.getByText("No keys match.")).toBeVisible();
  await page.getByRole("search", { name: "Filter keys" }).getByLabel("Status").selectOption("Active");
  await expect(page.getByRole("table", { name: "API keys" }).getByRole("row", { name: /mia's worker v2/ })).toContainText("active");
  const accepted = await member.request.get("/api/v1/keys", { headers: { Authorization: `Bearer ${secret}` } });
  expect(accepted.status()).toBe(200);

  // A second key that Mia reshapes while the owner looks is rejected all the same: rejecting
  // takes power away whatever the key became.
  await open(member, "/keys");
  await member.getByLabel("Organization", { exact: true }).selectOption({ label: org });
  await openCreateKeyForm(member);
  await form.getByLabel("Name").fill("mia's second");
  await form.getByRole("button", { name: "Create" }).click();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  await page.getByRole("search", { name: "Filter keys" }).getByLabel("Status").selectOption("Pending approval");
  const second = page.getByRole("table", { name: "API keys" }).getByRole("row", { name: /mia's second/ });
  await expect(second).toContainText("pending");
  await member.getByRole("table", { name: "API keys" }).getByRole("link", { name: "mia's second" }).click();
  await settings.getByLabel("Name").fill("mia's second v2");
  await settings.getByRole("button", { name: "Save changes" }).click();
  await expect(member.getByRole("heading", { name: "mia's second v2", level: 1 })).toBeVisible();
  await second.getByRole("button", { name: "Reject mia's second", exact: true }).click();
  await expect(page.getByText("No keys match.")).toBeVisible();
  await page.getByRole("search", { name: "Filter keys" }).getByLabel("Status").selectOption("Revoked");
  await expect(page.getByRole("table", { name: "API keys" }).getByRole("row", { name: /mia's second v2/ })).toContainText("revoked");
});

test("a team gives its members a role at once, and taking them out takes it away", async ({ page, browser }) => {
  const org = `Teams ${Date.now()}`;
  await signUp(page, freshEmail("tlead"), "Tara");
  await createOrganization(page, org);
  // A custom role that may invite.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Roles" }).click();
  const create = page.getByRole("region", { name: "Create a role" });
  await create.getByLabel("Name").fill("recruiter");
  await create.getByLabel("Inherits from").selectOption({ label: "viewer" });
  await create.getByRole("button", { name: "Create role" }).click();
  const recruiter = page.getByRole("region", { name: "Role recruiter" });
  await recruiter.getByLabel("Permission", { exact: true }).selectOption("members:write");
  await recruiter.getByRole("button", { name: "Grant" }).click();
  await expect(recruiter.getByRole("table", { name: "Permissions granted directly by recruiter" }).getByRole("cell", { name: "members:write", exact: true })).toBeVisible();

  await open(page, "/members");
  const newcomer = freshEmail("teamie");
  await invite(page, newcomer, "viewer");
  const theirs = await acceptAsNewcomer(browser, await invitationLink(newcomer, org), "Theo");
  // A viewer: no invitation form.
  await expect(theirs.getByRole("region", { name: "Invite a member" })).toHaveCount(0);

  // The owner makes a team holding the role, and puts Theo in it.
  await page.reload();
  const teams = page.getByRole("region", { name: "Teams" });
  await teams.getByLabel("Team name").fill("Hiring");
  await teams.getByRole("button", { name: "Create team" }).click();
  const hiring = page.getByRole("region", { name: "Team Hiring" });
  await hiring.getByLabel("Role for Hiring").selectOption({ label: "recruiter" });
  await hiring.getByRole("button", { name: "Give role" }).click();
  await expect(hiring.getByRole("list", { name: "Roles of Hiring" })).toContainText("recruiter");
  await hiring.getByLabel("Add to Hiring").selectOption({ label: newcomer });
  await hiring.getByRole("button", { name: "Add to team" }).click();
  await expect(hiring.getByRole("list", { name: "Members of Hiring" })).toContainText(newcomer);

  // Theo may invite now, without signing in again.
  await theirs.reload();
  await expect(theirs.getByRole("region", { name: "Invite a member" })).toBeVisible();

  // Out of the team: the form is gone again.
  await hiring.getByRole("button", { name: `Remove ${newcomer} from Hiring` }).click();
  await expect(hiring.getByRole("list", { name: "Members of Hiring" })).not.toContainText(newcomer);
  await theirs.reload();
  await expect(theirs.getByRole("heading", { name: "Members", level: 1 })).toBeVisible();
  await expect(theirs.getByRole("region", { name: "Invite a member" })).toHaveCount(0);
});
