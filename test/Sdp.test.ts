import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { RTCPeerConnection, SessionDescription, useOPUS, useVP8 } from "werift"
import type { RTCPeerConnectionConfig } from "werift"
import {
  answerCredentials,
  candidates,
  iceAttributes,
  iceCredentials,
  isText,
  parseCandidate,
  readAnswer,
  restartFragment,
  rewriteAnswer,
  startsWithVersion,
  stripCandidates,
  validateOffer,
  validCredentials
} from "../src/Sdp.ts"
import type { OfferProblem } from "../src/Sdp.ts"

const crlf = (...lines: Array<string>) => lines.map((line) => `${line}\r\n`).join("")
const lf = (...lines: Array<string>) => lines.map((line) => `${line}\n`).join("")

const PROXY = { ip: "203.0.113.9", port: 18000 } as const
const PROXY_CANDIDATE = "a=candidate:0 1 udp 2130706431 203.0.113.9 18000 typ host generation 0"

/** A minimal offer with session-level credentials, plus whatever lines are given for its one m-section. */
const offer = (...media: Array<string>) =>
  crlf(
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=ice-ufrag:Abc+/12",
    "a=ice-pwd:0123456789abcdefABCDEF",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    ...media
  )

/** The offer's problem, undefined when it is valid. */
const problem = (sdp: string): OfferProblem | undefined => {
  const result = validateOffer(sdp)
  return Either.isLeft(result) ? result.left : undefined
}

describe("iceCredentials", () => {
  it("session-level a=ice-ufrag / a=ice-pwd", () => {
    assert.deepStrictEqual(iceCredentials(offer()), { ufrag: "Abc+/12", pwd: "0123456789abcdefABCDEF" })
  })

  it("media-level, in the first media section", () => {
    const sdp = lf("v=0", "s=-", "m=audio 9 RTP/AVP 0", "a=ice-ufrag:mediaU", "a=ice-pwd:mediaPasswordmediaPassword", "m=video 9 RTP/AVP 96", "a=ice-ufrag:other", "a=ice-pwd:otherpwd")
    assert.deepStrictEqual(iceCredentials(sdp), { ufrag: "mediaU", pwd: "mediaPasswordmediaPassword" })
  })

  it("the first one wins: session-level over media-level", () => {
    const sdp = crlf("v=0", "a=ice-ufrag:sess", "a=ice-pwd:sesspwd", "m=audio 9 RTP/AVP 0", "a=ice-ufrag:media", "a=ice-pwd:mediapwd")
    assert.deepStrictEqual(iceCredentials(sdp), { ufrag: "sess", pwd: "sesspwd" })
  })

  it("a pair split between levels is read from both", () => {
    const sdp = crlf("v=0", "a=ice-pwd:sesspwd", "m=audio 9 RTP/AVP 0", "a=ice-ufrag:media")
    assert.deepStrictEqual(iceCredentials(sdp), { ufrag: "media", pwd: "sesspwd" })
  })

  it("missing ones are absent keys; trailing white space is not part of the value", () => {
    assert.deepStrictEqual(iceCredentials(crlf("v=0", "a=ice-ufrag:only  ")), { ufrag: "only" })
    assert.deepStrictEqual(iceCredentials(""), {})
  })
})

describe("validateOffer", () => {
  it("a valid offer gives its credentials", () => {
    assert.deepStrictEqual(
      validateOffer(offer()),
      Either.right({ credentials: { ufrag: "Abc+/12", pwd: "0123456789abcdefABCDEF" }, forOrigin: offer() })
    )
  })

  it("its copy for the origin is stripCandidates of it (CRLF and LF, with and without candidates)", () => {
    const candidate = "a=candidate:1 1 udp 2122260223 192.168.1.10 50123 typ host"
    for (
      const sdp of [
        offer(candidate, "a=end-of-candidates"),
        offer("a=mid:0"),
        lf("v=0", "a=ice-ufrag:Abc", "a=ice-pwd:0123456789abcdefABCDEF", "m=audio 9 RTP/AVP 0", candidate)
      ]
    ) {
      const valid = Either.getOrThrow(validateOffer(sdp))
      assert.strictEqual(valid.forOrigin, stripCandidates(sdp))
    }
    assert.notInclude(Either.getOrThrow(validateOffer(offer(candidate))).forOrigin, "a=candidate")
  })

  it("empty: nothing, or only white space", () => {
    assert.strictEqual(problem(""), "empty")
    assert.strictEqual(problem(" \r\n\t\n"), "empty")
  })

  it("binary: control characters other than CR, LF and TAB", () => {
    assert.strictEqual(problem(offer("a=x:\u0000")), "binary")
    assert.strictEqual(problem("\u0001\u0002v=0"), "binary")
    assert.strictEqual(problem(offer("a=x:\u001f")), "binary")
    // TAB is text.
    assert.strictEqual(problem(offer("a=tool:a\tb")), undefined)
  })

  it("not-sdp: text that does not start with v=0", () => {
    assert.strictEqual(problem("hello"), "not-sdp")
    assert.strictEqual(problem("{\"sdp\":\"v=0\"}"), "not-sdp")
    assert.strictEqual(problem(offer().replace("v=0\r\n", "")), "not-sdp")
  })

  it("no-media: no m= line", () => {
    assert.strictEqual(problem(crlf("v=0", "s=-", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefABCDEF")), "no-media")
  })

  it("no-ice-ufrag", () => {
    assert.strictEqual(problem(offer().replace("a=ice-ufrag:Abc+/12\r\n", "")), "no-ice-ufrag")
  })

  it("no-ice-pwd", () => {
    assert.strictEqual(problem(offer().replace("a=ice-pwd:0123456789abcdefABCDEF\r\n", "")), "no-ice-pwd")
  })

  it("bad-ice-ufrag: characters outside ALPHA / DIGIT / + / (':' would break the pair key), empty, too long", () => {
    for (const ufrag of ["ab:cd", "ab-cd", "ab cd", "", "x".repeat(257)]) {
      assert.strictEqual(problem(offer().replace("Abc+/12", ufrag)), "bad-ice-ufrag", JSON.stringify(ufrag))
    }
    assert.strictEqual(problem(offer().replace("Abc+/12", "x".repeat(256))), undefined)
  })

  it("bad-ice-pwd", () => {
    for (const pwd of ["pass:word", "pass word", "pässword", ""]) {
      assert.strictEqual(problem(offer().replace("0123456789abcdefABCDEF", pwd)), "bad-ice-pwd", JSON.stringify(pwd))
    }
  })
})

describe("answerCredentials", () => {
  it("the answer's pair", () => {
    assert.deepStrictEqual(
      answerCredentials(crlf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=ice-ufrag:0v27l7b8", "a=ice-pwd:2t6l8kq8u3x1v7y5m2k9z0a4b6c8d1e3")),
      Either.right({ ufrag: "0v27l7b8", pwd: "2t6l8kq8u3x1v7y5m2k9z0a4b6c8d1e3" })
    )
  })

  it("held to the offer's rules", () => {
    assert.deepStrictEqual(answerCredentials(crlf("v=0", "a=ice-ufrag:abcd")), Either.left("no-ice-pwd"))
    assert.deepStrictEqual(answerCredentials(crlf("v=0", "a=ice-pwd:abcd")), Either.left("no-ice-ufrag"))
    assert.deepStrictEqual(answerCredentials(crlf("v=0", "a=ice-ufrag:a:b", "a=ice-pwd:abcd")), Either.left("bad-ice-ufrag"))
  })
})

describe("parseCandidate", () => {
  it("an SRS host candidate", () => {
    assert.deepStrictEqual(parseCandidate("a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0"), {
      foundation: "0",
      component: 1,
      transport: "udp",
      priority: 2130706431,
      address: "10.0.0.7",
      port: 8000,
      type: "host"
    })
  })

  it("a browser candidate: upper-case transport, IPv6, extensions after the type", () => {
    assert.deepStrictEqual(
      parseCandidate("a=candidate:842163049 2 UDP 1677729535 2001:db8::5 61665 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag AbCd network-cost 999"),
      { foundation: "842163049", component: 2, transport: "udp", priority: 1677729535, address: "2001:db8::5", port: 61665, type: "srflx" }
    )
  })

  it("a TCP candidate keeps its transport", () => {
    assert.strictEqual(parseCandidate("a=candidate:2 1 tcp 1518280447 10.0.0.7 8000 typ host tcptype passive")?.transport, "tcp")
  })

  it("ports 0 and 65535 are in range", () => {
    assert.strictEqual(parseCandidate("a=candidate:1 1 udp 1 10.0.0.7 0 typ host")?.port, 0)
    assert.strictEqual(parseCandidate("a=candidate:1 1 udp 1 10.0.0.7 65535 typ host")?.port, 65535)
  })

  it("missing typ", () => {
    assert.isUndefined(parseCandidate("a=candidate:0 1 udp 2130706431 10.0.0.7 8000 host generation 0"))
    assert.isUndefined(parseCandidate("a=candidate:0 1 udp 2130706431 10.0.0.7 8000 type host"))
  })

  it("bad port", () => {
    for (const port of ["80a", "65536", "-1", "1.5", "port"]) {
      assert.isUndefined(parseCandidate(`a=candidate:0 1 udp 2130706431 10.0.0.7 ${port} typ host`), port)
    }
  })

  it("bad component or priority", () => {
    assert.isUndefined(parseCandidate("a=candidate:0 x udp 2130706431 10.0.0.7 8000 typ host"))
    assert.isUndefined(parseCandidate("a=candidate:0 1 udp high 10.0.0.7 8000 typ host"))
  })

  it("a short line", () => {
    assert.isUndefined(parseCandidate("a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ"))
    assert.isUndefined(parseCandidate("a=candidate:"))
  })

  it("not a candidate line", () => {
    assert.isUndefined(parseCandidate("a=ice-ufrag:abcd"))
    assert.isUndefined(parseCandidate("candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host"))
    assert.isUndefined(parseCandidate("a=end-of-candidates"))
    assert.isUndefined(parseCandidate(""))
  })
})

describe("candidates", () => {
  it("every parseable candidate of every section, in order; malformed ones skipped", () => {
    const sdp = crlf(
      "v=0",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
      "a=candidate:broken",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=candidate:2 1 tcp 2130706431 10.0.0.7 8000 typ host tcptype passive generation 0"
    )
    assert.deepStrictEqual(
      candidates(sdp).map((c) => `${c.foundation} ${c.transport} ${c.address}:${c.port}`),
      ["0 udp 10.0.0.7:8000", "2 tcp 10.0.0.7:8000"]
    )
    assert.deepStrictEqual(candidates(offer()), [])
  })
})

describe("stripCandidates", () => {
  const withCandidates = [
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host generation 0",
    "a=ice-ufrag:abcd",
    "a=candidate:2 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active",
    "a=ice-pwd:0123456789abcdefABCDEF",
    "a=end-of-candidates",
    "a=mid:0",
    "a=candidate-like:not a candidate",
    "a=rtpmap:111 opus/48000/2 "
  ]
  const without = withCandidates.filter((line) => !line.startsWith("a=candidate:") && line !== "a=end-of-candidates")

  it("removes candidates and end-of-candidates, keeps every other line byte-exact (CRLF)", () => {
    assert.strictEqual(stripCandidates(crlf(...withCandidates)), crlf(...without))
  })

  it("keeps LF line endings", () => {
    assert.strictEqual(stripCandidates(lf(...withCandidates)), lf(...without))
  })

  it("keeps a missing final line ending missing", () => {
    assert.strictEqual(stripCandidates(withCandidates.join("\r\n")), without.join("\r\n"))
    assert.strictEqual(stripCandidates(withCandidates.join("\n")), without.join("\n"))
  })

  it("returns the same string when there is nothing to strip", () => {
    const sdp = crlf(...without)
    assert.strictEqual(stripCandidates(sdp), sdp)
    assert.strictEqual(stripCandidates(""), "")
  })

  it("a trickle fragment of only candidates becomes empty", () => {
    assert.strictEqual(stripCandidates(crlf("a=candidate:1 1 udp 1 10.0.0.1 9 typ host", "a=end-of-candidates")), "")
  })
})

describe("rewriteAnswer", () => {
  // An SRS v6/v7 WHIP answer: ICE-lite, BUNDLE, candidates at the end of each section (its UDP host
  // candidate, the request's Host name as a second candidate, and a passive TCP one when RTC over TCP is on).
  const srsAnswer = [
    "v=0",
    "o=SRS/6.0.113(Bee) 107408542208384 2 IN IP4 0.0.0.0",
    "s=SRSPublishSession",
    "t=0 0",
    "a=ice-lite",
    "a=group:BUNDLE 0 1",
    "a=msid-semantic: WMS live/livestream",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:0v27l7b8",
    "a=ice-pwd:2t6l8kq8u3x1v7y5m2k9z0a4b6c8d1e3",
    "a=fingerprint:sha-256 8F:4C:E2:9B:7A:1D:3E:60:55:0C:AF:12:9B:38:7D:E4:61:0A:9C:FF:21:33:45:67:89:AB:CD:EF:01:23:45:67",
    "a=setup:passive",
    "a=mid:0",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
    "a=candidate:1 1 udp 2130706431 origin-1.internal.example 8000 typ host generation 0",
    "a=candidate:2 1 tcp 2130706431 10.0.0.7 8000 typ host tcptype passive generation 0",
    "m=video 9 UDP/TLS/RTP/SAVPF 106",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:0v27l7b8",
    "a=ice-pwd:2t6l8kq8u3x1v7y5m2k9z0a4b6c8d1e3",
    "a=fingerprint:sha-256 8F:4C:E2:9B:7A:1D:3E:60:55:0C:AF:12:9B:38:7D:E4:61:0A:9C:FF:21:33:45:67:89:AB:CD:EF:01:23:45:67",
    "a=setup:passive",
    "a=mid:1",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:106 H264/90000",
    "a=rtcp-fb:106 transport-cc",
    "a=rtcp-fb:106 nack",
    "a=rtcp-fb:106 nack pli",
    "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
    "a=candidate:1 1 udp 2130706431 origin-1.internal.example 8000 typ host generation 0",
    "a=candidate:2 1 tcp 2130706431 10.0.0.7 8000 typ host tcptype passive generation 0"
  ]
  // Every candidate of a section becomes one line at the place of the first; nothing else moves.
  const expected = srsAnswer.flatMap((line, i) =>
    !line.startsWith("a=candidate:") ? [line] : srsAnswer[i - 1]!.startsWith("a=candidate:") ? [] : [PROXY_CANDIDATE]
  )

  it("a realistic SRS answer: one UDP candidate at the proxy per section, all else byte-exact (CRLF)", () => {
    const rewritten = rewriteAnswer(crlf(...srsAnswer), PROXY)
    assert.strictEqual(rewritten, crlf(...expected))
    assert.deepStrictEqual(
      candidates(rewritten).map((c) => `${c.transport} ${c.address} ${c.port}`),
      ["udp 203.0.113.9 18000", "udp 203.0.113.9 18000"]
    )
    assert.notInclude(rewritten, "10.0.0.7")
    assert.notInclude(rewritten, "origin-1.internal.example")
    assert.notInclude(rewritten, "tcptype")
  })

  it("LF line endings and a missing final line ending are kept", () => {
    assert.strictEqual(rewriteAnswer(lf(...srsAnswer), PROXY), lf(...expected))
    assert.strictEqual(rewriteAnswer(srsAnswer.join("\r\n"), PROXY), expected.join("\r\n"))
  })

  it("foundation and priority come from the first UDP candidate, not from a TCP one before it", () => {
    const sdp = crlf(
      "v=0",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=candidate:9 1 tcp 1518280447 10.0.0.7 8000 typ host tcptype passive",
      "a=candidate:3 1 udp 2122260223 10.0.0.7 8000 typ host generation 0",
      "a=candidate:4 1 udp 1686052607 198.51.100.7 8000 typ srflx raddr 10.0.0.7 rport 8000",
      "a=mid:0"
    )
    assert.strictEqual(
      rewriteAnswer(sdp, PROXY),
      crlf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=candidate:3 1 udp 2122260223 203.0.113.9 18000 typ host generation 0", "a=mid:0")
    )
  })

  it("components are kept: a component 2 candidate gives a component 2 line", () => {
    const sdp = lf(
      "v=0",
      "m=audio 9 RTP/SAVPF 0",
      "a=candidate:0 2 udp 2130706430 10.0.0.7 8001 typ host",
      "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host",
      "a=rtcp:8001"
    )
    assert.strictEqual(
      rewriteAnswer(sdp, PROXY),
      lf(
        "v=0",
        "m=audio 9 RTP/SAVPF 0",
        "a=candidate:0 1 udp 2130706430 203.0.113.9 18000 typ host generation 0",
        "a=candidate:0 2 udp 2130706430 203.0.113.9 18000 typ host generation 0",
        "a=rtcp:8001"
      )
    )
  })

  it("a section with only TCP candidates gets one UDP candidate with the default foundation and priority", () => {
    const sdp = lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=candidate:2 1 tcp 1518280447 10.0.0.7 8000 typ host tcptype passive", "a=mid:0")
    assert.strictEqual(rewriteAnswer(sdp, PROXY), lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", PROXY_CANDIDATE, "a=mid:0"))
  })

  it("a candidate line that does not parse is replaced too (no origin address leaks)", () => {
    const sdp = lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=candidate:garbage 10.0.0.7", "a=mid:0")
    assert.strictEqual(rewriteAnswer(sdp, PROXY), lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", PROXY_CANDIDATE, "a=mid:0"))
  })

  it("a rejected m-section (port 0) gets no candidate, and loses the ones it had", () => {
    const sdp = lf(
      "v=0",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
      "m=video 0 UDP/TLS/RTP/SAVPF 96",
      "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
      "a=mid:1",
      "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
      "a=mid:2"
    )
    assert.strictEqual(
      rewriteAnswer(sdp, PROXY),
      lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", PROXY_CANDIDATE, "m=video 0 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "m=application 0 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:2")
    )
  })

  it("a section without candidates gets one at its end", () => {
    const sdp = lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1")
    assert.strictEqual(
      rewriteAnswer(sdp, PROXY),
      lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", PROXY_CANDIDATE, "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", PROXY_CANDIDATE)
    )
  })

  it("... before its a=end-of-candidates, which stays (and one in an earlier section is not taken for it)", () => {
    const sdp = lf(
      "v=0",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
      "a=end-of-candidates",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=mid:1",
      "a=end-of-candidates",
      "a=rtcp-mux",
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "a=mid:2"
    )
    assert.strictEqual(
      rewriteAnswer(sdp, PROXY),
      lf(
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        PROXY_CANDIDATE,
        "a=end-of-candidates",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        PROXY_CANDIDATE,
        "a=end-of-candidates",
        "a=rtcp-mux",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=mid:2",
        PROXY_CANDIDATE
      )
    )
  })

  it("c= lines with an address point at the proxy (IP4/IP6); c=IN IP4 0.0.0.0 and c=IN IP6 :: stay; session-level too", () => {
    const sdp = crlf(
      "v=0",
      "c=IN IP4 10.0.0.7",
      "m=audio 8000 UDP/TLS/RTP/SAVPF 111",
      "c=IN IP4 10.0.0.7",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "c=IN IP4 0.0.0.0",
      "m=video 9 UDP/TLS/RTP/SAVPF 97",
      "c=IN IP6 fd00::7",
      "m=video 9 UDP/TLS/RTP/SAVPF 98",
      "c=IN IP6 ::"
    )
    assert.strictEqual(
      rewriteAnswer(sdp, PROXY),
      crlf(
        "v=0",
        "c=IN IP4 203.0.113.9",
        "m=audio 8000 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 203.0.113.9",
        PROXY_CANDIDATE,
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        PROXY_CANDIDATE,
        "m=video 9 UDP/TLS/RTP/SAVPF 97",
        "c=IN IP4 203.0.113.9",
        PROXY_CANDIDATE,
        "m=video 9 UDP/TLS/RTP/SAVPF 98",
        "c=IN IP6 ::",
        PROXY_CANDIDATE
      )
    )
  })

  it("an IPv6 proxy address: IP6 in c= and the address in the candidate", () => {
    const sdp = lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 10.0.0.7", "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0")
    assert.strictEqual(
      rewriteAnswer(sdp, { ip: "2001:db8::9", port: 443 }),
      lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP6 2001:db8::9", "a=candidate:0 1 udp 2130706431 2001:db8::9 443 typ host generation 0")
    )
  })

  it("a list of addresses: one UDP candidate per address, IPv6 as IPv6, each further one a local preference lower", () => {
    const sdp = lf("v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 10.0.0.7", "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0", "a=mid:0")
    assert.strictEqual(
      rewriteAnswer(sdp, { ip: "203.0.113.10", moreIps: ["2001:db8::10"], port: 18000 }),
      lf(
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 203.0.113.10",
        "a=candidate:0 1 udp 2130706431 203.0.113.10 18000 typ host generation 0",
        "a=candidate:udp1 1 udp 2130706175 2001:db8::10 18000 typ host generation 0",
        "a=mid:0"
      )
    )
    // IPv6 first: c= follows the first address.
    assert.include(rewriteAnswer(sdp, { ip: "2001:db8::10", moreIps: ["203.0.113.10"], port: 18000 }), "c=IN IP6 2001:db8::10")
  })

  it("with ICE-TCP, a passive TCP candidate per address and component after the UDP ones, below each of them (RFC 6544)", () => {
    const sdp = lf(
      "v=0",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0",
      "a=candidate:2 1 tcp 2130706431 10.0.0.7 8000 typ host tcptype passive generation 0",
      "a=end-of-candidates"
    )
    const rewritten = rewriteAnswer(sdp, { ip: "203.0.113.10", moreIps: ["2001:db8::10"], port: 18000, tcpPort: 443 })
    assert.strictEqual(
      rewritten,
      lf(
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=candidate:0 1 udp 2130706431 203.0.113.10 18000 typ host generation 0",
        "a=candidate:udp1 1 udp 2130706175 2001:db8::10 18000 typ host generation 0",
        // 90 << 24 | (4 << 13 | 8191) << 8 | 255, then one local preference lower per address.
        "a=candidate:tcp0 1 tcp 1520435199 203.0.113.10 443 typ host tcptype passive generation 0",
        "a=candidate:tcp1 1 tcp 1520434943 2001:db8::10 443 typ host tcptype passive generation 0",
        "a=end-of-candidates"
      )
    )
    const parsed = candidates(rewritten)
    const lowestUdp = Math.min(...parsed.filter((c) => c.transport === "udp").map((c) => c.priority))
    for (const tcp of parsed.filter((c) => c.transport === "tcp")) assert.isBelow(tcp.priority, lowestUdp)
  })

  it("a TCP candidate stays below UDP even when the origin's UDP priority is low", () => {
    const sdp = lf("v=0", "m=audio 9 RTP/AVP 0", "a=candidate:0 1 udp 1000 10.0.0.1 8000 typ host", "a=candidate:0 2 udp 999 10.0.0.1 8001 typ host")
    const parsed = candidates(rewriteAnswer(sdp, { ip: "203.0.113.10", port: 18000, tcpPort: 443 }))
    assert.deepStrictEqual(parsed.map((c) => `${c.transport} ${c.component} ${c.priority}`), [
      "udp 1 1000",
      "udp 2 1000",
      "tcp 1 999",
      "tcp 2 999"
    ])
    // Priorities never go below zero, whatever the origin wrote.
    const zero = candidates(rewriteAnswer(lf("v=0", "m=audio 9 RTP/AVP 0", "a=candidate:0 1 udp 0 10.0.0.1 8000 typ host"), {
      ip: "203.0.113.10",
      moreIps: ["2001:db8::10"],
      port: 18000,
      tcpPort: 443
    }))
    assert.deepStrictEqual(zero.map((c) => c.priority), [0, 0, 0, 0])
  })

  it("a rejected section gets no TCP candidate either", () => {
    const rejected = rewriteAnswer(lf("v=0", "m=video 0 RTP/AVP 96", "a=candidate:0 1 udp 1 10.0.0.1 8000 typ host"), { ...PROXY, tcpPort: 443 })
    assert.notInclude(rejected, "a=candidate")
  })

  it("a description without media sections is unchanged except for c=", () => {
    const sdp = crlf("a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefABCDEF")
    assert.strictEqual(rewriteAnswer(sdp, PROXY), sdp)
  })
})

describe("with werift's own SDP", () => {
  const config: RTCPeerConnectionConfig = {
    iceServers: [],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
    codecs: { audio: [useOPUS()], video: [useVP8()] }
  }

  const gathered = async (pc: RTCPeerConnection): Promise<string> => {
    if (pc.iceGatheringState !== "complete") await pc.iceGatheringStateChange.watch((state) => state === "complete")
    return pc.localDescription!.sdp
  }

  it("an offer validates and strips; an answer rewrites to what werift parses back", async () => {
    const client = new RTCPeerConnection(config)
    const server = new RTCPeerConnection(config)
    try {
      client.addTransceiver("audio", { direction: "sendonly" })
      client.addTransceiver("video", { direction: "sendonly" })
      await client.setLocalDescription(await client.createOffer())
      const offerSdp = await gathered(client)
      const valid = validateOffer(offerSdp)
      assert.isTrue(Either.isRight(valid))
      assert.deepStrictEqual(Either.getOrThrow(valid).credentials, iceCredentials(offerSdp) as { ufrag: string; pwd: string })
      assert.isAbove(candidates(offerSdp).length, 0)

      const stripped = stripCandidates(offerSdp)
      assert.deepStrictEqual(candidates(stripped), [])
      assert.notInclude(stripped, "a=end-of-candidates")
      const kept = (sdp: string) => sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:") && l !== "a=end-of-candidates")
      assert.deepStrictEqual(kept(stripped), kept(offerSdp))

      await server.setRemoteDescription({ type: "offer", sdp: stripped })
      await server.setLocalDescription(await server.createAnswer())
      const answerSdp = await gathered(server)
      assert.isTrue(Either.isRight(answerCredentials(answerSdp)))

      const rewritten = rewriteAnswer(answerSdp, PROXY)
      const parsed = SessionDescription.parse(rewritten)
      assert.strictEqual(parsed.media.length, 2)
      for (const media of parsed.media) {
        assert.deepStrictEqual(
          media.iceCandidates.map((c) => `${c.foundation} ${c.component} ${c.protocol} ${c.priority} ${c.ip} ${c.port} ${c.type}`),
          [`${candidates(answerSdp)[0]!.foundation} 1 udp ${candidates(answerSdp)[0]!.priority} 203.0.113.9 18000 host`]
        )
      }
      assert.deepStrictEqual(kept(rewritten), kept(answerSdp))
    } finally {
      await client.close()
      await server.close()
    }
  })
})

describe("strict numbers and section ports", () => {
  it("parseCandidate takes plain decimal numbers only", () => {
    for (const bad of ["0x1F40", "1e3", "+80", "-1"]) {
      assert.isUndefined(parseCandidate(`a=candidate:0 1 udp 2130706431 10.0.0.1 ${bad} typ host`), bad)
      assert.isUndefined(parseCandidate(`a=candidate:0 1 udp ${bad} 10.0.0.1 8000 typ host`), bad)
    }
    assert.isUndefined(parseCandidate("a=candidate:0 1 udp 4294967296 10.0.0.1 8000 typ host"))
  })

  it("rewriteAnswer treats m=<media> 0/2 as rejected and orders components numerically", () => {
    const rejected = rewriteAnswer(lf("v=0", "m=video 0/2 RTP/AVP 96", "a=candidate:0 1 udp 1 10.0.0.1 8000 typ host"), PROXY)
    assert.notInclude(rejected, "a=candidate")
    const twoComponents = rewriteAnswer(
      lf("v=0", "m=audio 9 RTP/AVP 0", "a=candidate:0 2 udp 1 10.0.0.1 8001 typ host", "a=candidate:0 1 udp 1 10.0.0.1 8000 typ host"),
      PROXY
    )
    const components = twoComponents.split("\n").filter((line) => line.startsWith("a=candidate")).map((line) => line.split(" ")[1])
    assert.deepStrictEqual(components, ["1", "2"])
  })
})

describe("iceAttributes", () => {
  it("a=ice-lite and the first a=ice-options, wherever they are", () => {
    assert.deepStrictEqual(iceAttributes(crlf("v=0", "a=ice-lite", "m=audio 9 UDP 0", "a=ice-options:trickle ice2")), {
      lite: true,
      options: "trickle ice2"
    })
    assert.deepStrictEqual(iceAttributes(lf("v=0", "a=ice-options:trickle", "a=ice-options:ice2")), { lite: false, options: "trickle" })
    assert.deepStrictEqual(iceAttributes(""), { lite: false, options: undefined })
  })
})

describe("isText", () => {
  it("CR, LF and TAB are text; other control characters are not", () => {
    assert.isTrue(isText("a=ice-ufrag:x\r\n\ta=mid:0\n"))
    assert.isTrue(isText(""))
    for (const c of ["\u0000", "\u0001", "\u0008", "\u000b", "\u000c", "\u000e", "\u001f"]) assert.isFalse(isText(`a=${c}`), JSON.stringify(c))
  })
})

describe("startsWithVersion", () => {
  it("v=0 first, after any white space (a BOM too, as trimStart cuts it); else false", () => {
    for (const sdp of ["v=0\r\n", " \r\n\tv=0", "\ufeffv=0\n", "\u00a0v=0"]) assert.isTrue(startsWithVersion(sdp), JSON.stringify(sdp))
    for (const sdp of ["", " \n ", "o=- 1 2 IN IP4 0.0.0.0\r\nv=0", "x v=0", "V=0"]) assert.isFalse(startsWithVersion(sdp), JSON.stringify(sdp))
    for (const sdp of ["v=0", " \r\n\tv=0", "\ufeffv=0", "", "  ", "x v=0"]) {
      assert.strictEqual(startsWithVersion(sdp), sdp.trimStart().startsWith("v=0"), JSON.stringify(sdp))
    }
  })
})

describe("readAnswer", () => {
  it("reads what answerCredentials, candidates and iceAttributes read, from one split", () => {
    const answers = [
      crlf(
        "v=0",
        "a=ice-lite",
        "a=ice-options:trickle",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=ice-ufrag:srv1",
        "a=ice-pwd:serverpassword0123456789ab",
        "a=candidate:0 1 udp 2130706431 10.0.0.5 8000 typ host generation 0",
        "a=candidate:1 1 tcp 1 10.0.0.5 8000 typ host tcptype passive",
        "a=candidate:bad"
      ),
      lf("v=0", "a=ice-ufrag:u", "m=video 9 RTP/AVP 96"), // no pwd
      crlf("v=0", "a=ice-ufrag:bad:colon", "a=ice-pwd:serverpassword0123456789ab", "m=video 9 RTP/AVP 96"),
      ""
    ]
    for (const sdp of answers) {
      assert.deepStrictEqual(readAnswer(sdp), {
        credentials: answerCredentials(sdp),
        candidates: candidates(sdp),
        ice: iceAttributes(sdp)
      })
    }
    const first = readAnswer(answers[0]!)
    assert.deepStrictEqual(first.credentials, Either.right({ ufrag: "srv1", pwd: "serverpassword0123456789ab" }))
    assert.lengthOf(first.candidates, 2)
    assert.deepStrictEqual(first.ice, { lite: true, options: "trickle" })
    assert.deepStrictEqual(readAnswer(answers[1]!).credentials, Either.left("no-ice-pwd"))
    assert.deepStrictEqual(readAnswer(answers[2]!).credentials, Either.left("bad-ice-ufrag"))
  })
})

describe("validCredentials", () => {
  it("both present, both of ICE characters", () => {
    assert.isTrue(validCredentials({ ufrag: "ab+/", pwd: "0123456789abcdefABCDEF" }))
    assert.isFalse(validCredentials({ ufrag: "ab" }))
    assert.isFalse(validCredentials({ pwd: "p" }))
    assert.isFalse(validCredentials({ ufrag: "a:b", pwd: "p" }))
    assert.isFalse(validCredentials({ ufrag: "ab", pwd: "p w" }))
  })
})

describe("restartFragment", () => {
  const credentials = { ufrag: "srvN", pwd: "serverPassword0123456789" }
  it("mirrors ice-lite and ice-options, keeps the request's BUNDLE group, m= lines and mids, one candidate each", () => {
    const request = lf(
      "a=ice-options:trickle",
      "a=group:BUNDLE 0 1",
      "a=ice-ufrag:cliN",
      "a=ice-pwd:clientPassword0123456789",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=mid:0",
      "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=mid:1"
    )
    assert.strictEqual(
      restartFragment({ request, credentials, lite: true, iceOptions: "trickle", address: PROXY }),
      crlf(
        "a=ice-lite",
        "a=ice-options:trickle",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=ice-ufrag:srvN",
        "a=ice-pwd:serverPassword0123456789",
        "a=candidate:0 1 udp 2130706431 203.0.113.9 18000 typ host",
        "a=end-of-candidates",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        "a=ice-ufrag:srvN",
        "a=ice-pwd:serverPassword0123456789",
        "a=candidate:0 1 udp 2130706431 203.0.113.9 18000 typ host",
        "a=end-of-candidates"
      )
    )
  })

  it("a request without media sections gets the credentials at session level; no lite, no options", () => {
    assert.strictEqual(
      restartFragment({
        request: crlf("a=ice-ufrag:cliN", "a=ice-pwd:clientPassword0123456789"),
        credentials,
        lite: false,
        iceOptions: undefined,
        address: PROXY
      }),
      crlf("a=ice-ufrag:srvN", "a=ice-pwd:serverPassword0123456789")
    )
  })

  it("carries the answer's candidates: every address (both families) and the passive TCP ones, without a generation", () => {
    // A client on ICE-TCP (UDP blocked) or on IPv6 only reaches the proxy again only through these.
    const address = { ip: "203.0.113.9", moreIps: ["2001:db8::9"], port: 18000, tcpPort: 18443 }
    const fragment = restartFragment({
      request: crlf("m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0"),
      credentials,
      lite: false,
      iceOptions: undefined,
      address
    })
    const answered = rewriteAnswer(offer("a=mid:0", "a=candidate:0 1 udp 2130706431 192.0.2.1 5000 typ host"), address)
      .split("\r\n").filter((line) => line.startsWith("a=candidate:")).map((line) => line.replace(/ generation 0$/, ""))
    assert.strictEqual(answered.length, 4)
    assert.strictEqual(
      fragment,
      crlf(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=ice-ufrag:srvN",
        "a=ice-pwd:serverPassword0123456789",
        ...answered,
        "a=end-of-candidates"
      )
    )
  })

  it("a media section without a mid keeps its m= line alone", () => {
    const fragment = restartFragment({
      request: crlf("m=audio 9 UDP/TLS/RTP/SAVPF 111"),
      credentials,
      lite: false,
      iceOptions: undefined,
      address: { ip: "2001:db8::1", port: 3478 }
    })
    assert.strictEqual(
      fragment,
      crlf(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=ice-ufrag:srvN",
        "a=ice-pwd:serverPassword0123456789",
        "a=candidate:0 1 udp 2130706431 2001:db8::1 3478 typ host",
        "a=end-of-candidates"
      )
    )
  })
})
