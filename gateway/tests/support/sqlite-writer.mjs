// A second writer on the gateway's SQLite file, for e2e/faults.ts and tests/queries.test.ts: `node
// tests/support/sqlite-writer.mjs <file> <holdMs> <pauseMs> <rounds>` takes the write
// lock (BEGIN IMMEDIATE), writes a row into a table of its own, keeps the lock
// for holdMs, commits, waits pauseMs, and again. Prints `locked <n>` when it
// holds the lock and `done <rounds>` at the end.
import Database from "better-sqlite3";

const [file, holdMs, pauseMs, rounds] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: node tests/support/sqlite-writer.mjs <file> <holdMs> <pauseMs> <rounds>\n");
  process.exit(2);
}
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const db = new Database(file, { timeout: 30_000 });
db.exec('CREATE TABLE IF NOT EXISTS "FaultWriter" (round INTEGER NOT NULL, at TEXT NOT NULL)');
const insert = db.prepare('INSERT INTO "FaultWriter" (round, at) VALUES (?, ?)');
for (let round = 1; round <= Number(rounds ?? 1); round += 1) {
  db.exec("BEGIN IMMEDIATE");
  insert.run(round, new Date().toISOString());
  process.stdout.write(`locked ${round}\n`);
  pause(Number(holdMs ?? 2000));
  db.exec("COMMIT");
  pause(Number(pauseMs ?? 100));
}
db.close();
process.stdout.write(`done ${rounds}\n`);
