import { randomBytes } from "node:crypto"

// ICE characters (RFC 8839): letters, digits, '+' and '/'; base64 without '=' is exactly that.
/** A random ICE ufrag or password of `length` characters. */
export const iceString = (length: number) =>
  randomBytes(length).toString("base64").replace(/[=]/g, "").slice(0, length)

/** A minimal valid offer as a browser-like client sends it (one video section, no candidates). */
export const minimalOffer = (clientUfrag = "cli1", clientPwd = "clientpassword0123456789"): string =>
  [
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=msid-semantic: WMS",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    `a=ice-ufrag:${clientUfrag}`,
    `a=ice-pwd:${clientPwd}`,
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 9E:C4:25:0D:1C:5A:66:23:B4:08:19:8C:2A:4D:7F:C7:8C:0E:3D:55:2B:A1:43:0B:4C:9D:E5:AB:91:7F:11:60",
    "a=setup:actpass",
    "a=mid:0",
    "a=sendonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 H264/90000",
    "a=ssrc:1 cname:bench",
    ""
  ].join("\r\n")
