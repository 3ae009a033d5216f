// Signs and verifies A2A agent cards with @a2a-js/sdk 1.3.0's own card signing
// (generateAgentCardSignature, verifyAgentCardSignature).
// Usage: node cardsig.mjs verify PUBLIC_KEY.pem CARD.json...
//          one line per card: {"card": path, "ok": true} or {"card": path, "ok": false, "error": ...}
//        node cardsig.mjs sign PRIVATE_KEY.pem HEADER.json IN.json OUT.json
//          OUT is IN with the SDK's signature added; HEADER is the JWS protected header.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { generateAgentCardSignature, verifyAgentCardSignature } from '@a2a-js/sdk';

const [mode, keyFile, ...rest] = process.argv.slice(2);
const readJSON = (path) => JSON.parse(readFileSync(path, 'utf8'));
console.debug = () => {}; // the verifier logs each signature that does not verify

if (mode === 'verify') {
  const key = createPublicKey(readFileSync(keyFile));
  const verify = verifyAgentCardSignature(async () => key);
  for (const card of rest) {
    try {
      await verify(readJSON(card));
      console.log(JSON.stringify({ card, ok: true }));
    } catch (e) {
      console.log(JSON.stringify({ card, ok: false, error: String(e?.message ?? e) }));
    }
  }
} else if (mode === 'sign') {
  const [headerFile, src, dst] = rest;
  const signed = await generateAgentCardSignature(createPrivateKey(readFileSync(keyFile)), readJSON(headerFile))(readJSON(src));
  writeFileSync(dst, JSON.stringify(signed));
  console.log(JSON.stringify({ card: dst, ok: true }));
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
