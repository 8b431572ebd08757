import { copyFileSync, mkdtempSync } from "node:fs";
import path from "node:path";
import { inject } from "vitest";

// Runs in each test file before its imports: a private copy of the migrated
// database, no .env files from the developer's checkout, quiet logs.
const dir = mkdtempSync(path.join(inject("scratchDir"), "file-"));
const file = path.join(dir, "test.db");
copyFileSync(inject("templateDb"), file);

process.env.DATABASE_URL = `file:${file}`;
process.env.MY_CLAW_ENV_DIR = dir;
process.env.LOG_LEVEL ??= "silent";
