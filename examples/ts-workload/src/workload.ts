// A Medicus Trust workload in TypeScript on Node: it attests in the INSECURE simulated TEE over
// trustd's HTTP/JSON API (docs/http.md), fetches a secret, opens a sealed data key, encrypts and
// decrypts a record with it, and shows what a denial looks like.
//
//   node dist/workload.js --addr http://127.0.0.1:7443
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Aes256Gcm, CipherSuite, HkdfSha256 } from "@hpke/core";
import { DhkemX25519HkdfSha256 } from "@hpke/dhkem-x25519";
import { RELEASE_INFO, releaseAAD, reportData, simulatedReport, verifyJWT, KEM_X25519, KDF_HKDF_SHA256, AEAD_AES_256_GCM } from "./protocol.js";

// The launch measurement that policies/examples/hello.yaml approves.
const HELLO = Buffer.from("6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631000000000000000000000000", "hex");

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s ?? "", "base64"));

class TrustError extends Error {
  constructor(readonly httpStatus: number, readonly code: number, message: string, readonly details: any[]) {
    super(message);
  }
}

class Trust {
  constructor(readonly base: string) {}

  async call(method: string, body: object): Promise<any> {
    const resp = await fetch(`${this.base}/medicus.trust.v1.Trust/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const out = await resp.json();
    if (!resp.ok) throw new TrustError(resp.status, out.code, out.message, out.details ?? []);
    return out;
  }
}

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

// attest asks for a challenge, makes a fresh workload key, binds both into simulated evidence,
// and returns trustd's answer with the key.
async function attest(t: Trust, measurement: Uint8Array) {
  const ch = await t.call("GetChallenge", {});
  const nonce = unb64(ch.nonce);
  const kp = await suite.kem.generateKeyPair();
  const pk = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
  const report = simulatedReport(measurement, reportData(nonce, pk));
  const resp = await t.call("Attest", {
    nonce: b64(nonce),
    evidence: { tee: "TEE_INSECURE_SIMULATED", report: b64(report) },
    workloadKey: { kem: KEM_X25519, kdf: KDF_HKDF_SHA256, aead: AEAD_AES_256_GCM, publicKey: b64(pk) },
  });
  return { resp, kp, pk };
}

// open opens a sealed release: the 32-byte encapsulated key, then the ciphertext.
async function open(kp: CryptoKeyPair, sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const pt = await suite.open({ recipientKey: kp.privateKey, enc: sealed.slice(0, 32), info: RELEASE_INFO }, sealed.slice(32), aad);
  return new Uint8Array(pt);
}

function fail(msg: string): never {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

async function main() {
  const i = process.argv.indexOf("--addr");
  const t = new Trust(i > 0 ? process.argv[i + 1] : "http://127.0.0.1:7443");

  // 1. Attest; both token forms come back.
  const { resp: att, kp, pk } = await attest(t, HELLO);
  if (att.verdict !== "affirming" || !att.jwt || !att.token) fail(`attest: ${JSON.stringify(att)}`);
  console.log(`attested: verdict ${att.verdict}, policy ${att.policy}, grants ${att.grants.map((g: any) => g.name).join(", ")}`);

  // 2. The JWT verifies under trustd's token keys, and binds our key (docs/tokens.md).
  const tk = await t.call("GetTokenKeys", {});
  const keys = new Map<string, Uint8Array>(tk.keys.map((k: any) => [k.kid, unb64(k.publicKey)]));
  const claims = verifyJWT(att.jwt, keys);
  const sub = claims.submods?.["insecure-simulated"];
  if (claims.eat_profile !== "tag:github.com,2023:veraison/ear" || sub?.["ear.status"] !== "affirming") fail(`claims ${JSON.stringify(claims)}`);
  if (claims.cnf?.jwk?.x !== Buffer.from(pk).toString("base64url")) fail("cnf does not bind the workload key");
  console.log(`token: EAR ${claims.eat_profile}, issuer ${claims.iss}, expires ${new Date(claims.exp * 1000).toISOString()}`);

  // 3. A secret, with the JWT as the token.
  const jwtToken = b64(new TextEncoder().encode(att.jwt));
  const sec = await t.call("GetSecret", { token: jwtToken, name: "hello/api-token", requestId: "ts-secret-1" });
  const secret = await open(kp, unb64(sec.secret.ciphertext), releaseAAD("ts-secret-1", "hello/api-token", {}));
  console.log(`secret hello/api-token: ${secret.length} bytes, version ${sec.version}`);

  // 4. A data key, with the CWT as the token; encrypt a record, then unwrap the stored key and
  //    decrypt it again.
  const ctx = { tenant: "uk-freiburg", case: "c-1042" };
  const dk = await t.call("GenerateDataKey", { token: att.token, keyName: "hello/records", context: ctx, requestId: "ts-dk-1" });
  const key = await open(kp, unb64(dk.dataKey.ciphertext), releaseAAD("ts-dk-1", "hello/records", ctx));
  if (key.length !== 32) fail(`data key of ${key.length} bytes`);
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  const ct = Buffer.concat([c.update("patient record 42"), c.final()]);
  const tag = c.getAuthTag();
  const uw = await t.call("UnwrapDataKey", { token: att.token, keyName: "hello/records", wrappedKey: dk.wrappedKey, context: ctx, requestId: "ts-dk-2" });
  const again = await open(kp, unb64(uw.dataKey.ciphertext), releaseAAD("ts-dk-2", "hello/records", ctx));
  const d = createDecipheriv("aes-256-gcm", again, iv);
  d.setAuthTag(tag);
  const pt = Buffer.concat([d.update(ct), d.final()]).toString();
  if (pt !== "patient record 42") fail("record did not decrypt");
  console.log(`data key hello/records: sealed key opened, record encrypted and decrypted after unwrap`);

  // 5. A denial: a tampered image.
  try {
    await attest(t, Buffer.from("tampered image"));
    fail("tampered image was not denied");
  } catch (e) {
    if (!(e instanceof TrustError) || e.httpStatus !== 403 || e.code !== 7) throw e;
    const den = e.details.find((x) => x["@type"] === "type.googleapis.com/medicus.trust.v1.Denial");
    if (den?.claim !== "measurement") fail(`denial ${JSON.stringify(e.details)}`);
    console.log(`denied (HTTP ${e.httpStatus}): ${den.claim} is ${den.seen.slice(0, 16)}…, expected ${den.expected.slice(0, 24)}…`);
  }
  console.log("ok");
}

main().catch((e) => fail(e instanceof Error ? e.stack ?? e.message : String(e)));
