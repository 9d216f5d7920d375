// The wire formats of the Medicus Trust protocol that a workload needs (docs/ in the repository:
// the protocol specification, docs/tokens.md and docs/http.md).
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";

const enc = new TextEncoder();

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function u16(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n);
  return b;
}

// lp is a length-prefixed part: a 4-byte big-endian length, then the bytes.
export function lp(part: Uint8Array | string): Uint8Array {
  const b = typeof part === "string" ? enc.encode(part) : part;
  return concat(u32(b.length), b);
}

// HPKE suite of the workload key: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
export const KEM_X25519 = 0x0020;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;

// suiteID is "HPKE" ‖ KEM ‖ KDF ‖ AEAD, each a 2-byte big-endian identifier.
export function suiteID(kem = KEM_X25519, kdf = KDF_HKDF_SHA256, aead = AEAD_AES_256_GCM): Uint8Array {
  return concat(enc.encode("HPKE"), u16(kem), u16(kdf), u16(aead));
}

// reportData binds the challenge and the workload key into the TEE report:
// SHA-512(lp(label) ‖ lp(nonce) ‖ lp(suite ID) ‖ lp(public key)).
export function reportData(nonce: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const h = createHash("sha512");
  for (const part of [lp("medicus-trust/v1 report-data"), lp(nonce), lp(suiteID()), lp(publicKey)]) {
    h.update(part);
  }
  return new Uint8Array(h.digest());
}

// canonicalContext encodes a key context: lp(label), then lp(key) ‖ lp(value) in key order.
export function canonicalContext(ctx: Record<string, string>): Uint8Array {
  const keys = Object.keys(ctx).sort();
  return concat(lp("medicus-trust/v1 context"), ...keys.flatMap((k) => [lp(k), lp(ctx[k])]));
}

// releaseAAD is the associated data of a sealed release.
export function releaseAAD(requestID: string, name: string, ctx: Record<string, string>): Uint8Array {
  return concat(lp("medicus-trust/v1 release-aad"), lp(requestID), lp(name), lp(canonicalContext(ctx)));
}

// HPKE info of every release.
export const RELEASE_INFO = enc.encode("medicus-trust/v1 release");

// The simulated TEE (INSECURE: its key is published; trustd accepts it only in --dev mode).
const SIM_MAGIC = concat(enc.encode("MTSIM"), new Uint8Array([0, 0, 1]));
const SIM_SEED = createHash("sha256").update("medicus-trust insecure simulator key: never trust this").digest();
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

// simulatedReport: magic ‖ flags ‖ SVN ‖ measurement (48) ‖ host data (32) ‖ report data (64) ‖
// 4 reserved bytes, then the Ed25519 signature of all that.
export function simulatedReport(measurement: Uint8Array, rd: Uint8Array, svn = 1): Uint8Array {
  const m = new Uint8Array(48);
  m.set(measurement.subarray(0, 48));
  const body = concat(SIM_MAGIC, u32(0), u32(svn), m, new Uint8Array(32), rd, new Uint8Array(4));
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, SIM_SEED]), format: "der", type: "pkcs8" });
  return concat(body, new Uint8Array(sign(null, body, key)));
}

// verifyJWT checks an ES256 JWT under trustd's token keys (GetTokenKeys: DER SPKI by kid) and
// returns its claims. Only ES256 is accepted, whatever the header says.
export function verifyJWT(jwt: string, keys: Map<string, Uint8Array>): Record<string, any> {
  const [h, p, s] = jwt.split(".");
  const header = JSON.parse(Buffer.from(h, "base64url").toString());
  if (header.alg !== "ES256") throw new Error(`token alg ${header.alg}, want ES256`);
  const spki = keys.get(header.kid);
  if (!spki) throw new Error(`token signed by unknown key ${header.kid}`);
  const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  const ok = verify("sha256", Buffer.from(`${h}.${p}`), { key, dsaEncoding: "ieee-p1363" }, Buffer.from(s, "base64url"));
  if (!ok) throw new Error("token signature does not verify");
  return JSON.parse(Buffer.from(p, "base64url").toString());
}
