/**
 * A writer for the durability test: inserts keys as fast as it can and prints `id hash` for each
 * one only after its transaction has committed, i.e. each printed line is an acknowledged write.
 * The test kills this process with SIGKILL at random moments.
 */
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { openDataDirStore } from "./stores.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";

const store = await openDataDirStore(process.argv[2]!);
for (;;) {
  const key = generateApiKey();
  const secretHash = digestToken(key.secret);
  await store.insertKey({ id: key.id, name: "durability", scopes: ["data:read"], secretHash, createdAt: Date.now(), expiresAt: null });
  process.stdout.write(`${key.id} ${Buffer.from(secretHash).toString("hex")}\n`);
}
