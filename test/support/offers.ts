/** A minimal WebRTC offer (one video section, no candidates) for signaling tests. */
export const minimalOffer = (clientUfrag = "cli1"): string =>
  [
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${clientUfrag}`,
    "a=ice-pwd:clientpassword0123456789",
    "a=setup:actpass",
    "a=mid:0",
    "a=sendonly",
    "a=rtpmap:96 VP8/90000",
    ""
  ].join("\r\n")
