"""`orga sdp` on aiortc's own offers and answers and on browser-style fixtures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orga_cli.sdp import load, pair, parse, parse_candidate

from .helpers.orga import REPO, Result

FIXTURES = REPO / "tests" / "fixtures" / "sdp"
Cli = Callable[..., Result]


def aiortc_pair() -> tuple[str, str]:
    """A real aiortc offer (audio sendrecv, video sendonly, data channel) and answer."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    async def make() -> tuple[str, str]:
        a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        a.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        a.addTransceiver(VideoStreamTrack(), direction="sendonly")
        a.createDataChannel("orga-realtime-client-events")
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(RTCSessionDescription(a.localDescription.sdp, "offer"))
        b.addTrack(AudioStreamTrack())
        await b.setLocalDescription(await b.createAnswer())
        offer, answer = a.localDescription.sdp, b.localDescription.sdp
        await a.close()
        await b.close()
        return offer, answer

    return asyncio.run(make())


@pytest.fixture(scope="module")
def real() -> tuple[str, str]:
    return aiortc_pair()


def test_aiortc_offer_structure(real: tuple[str, str]) -> None:
    offer = parse(real[0])
    assert [m.kind for m in offer.media] == ["audio", "video", "application"]
    assert [m.direction for m in offer.media[:2]] == ["sendrecv", "sendonly"]
    assert offer.groups == ["BUNDLE 0 1 2"]
    audio = offer.media[0]
    assert (
        audio.codecs[0].name == "opus"
        and audio.codecs[0].clock_rate == 48000
        and audio.codecs[0].channels == 2
    )
    assert audio.candidates and audio.candidates[0].type == "host" and audio.end_of_candidates
    assert audio.fingerprint and audio.setup == "actpass" and audio.ice_pwd_present
    video = offer.media[1]
    assert any(c.name == "rtx" and c.fmtp and c.fmtp.startswith("apt=") for c in video.codecs)
    assert any("nack pli" in c.rtcp_fb for c in video.codecs)
    assert offer.media[2].sctp_port == 5000 and offer.media[2].max_message_size


def test_aiortc_pair_is_clean(real: tuple[str, str]) -> None:
    pairing = pair(parse(real[0]), parse(real[1]))
    assert pairing.warnings == []
    assert pairing.media[0].codec and pairing.media[0].codec.startswith("opus/48000/2")
    assert pairing.media[1].answer_direction == "recvonly"


def mutate(sdp: str, old: str, new: str, count: int = -1) -> str:
    assert old in sdp
    return sdp.replace(old, new, count)


def drop_lines(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefix))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda a: drop_lines(a, "a=candidate:"), "no ICE candidates and the offer is not trickle"),
        (lambda a: mutate(a, "a=setup:active", "a=setup:actpass"), "setup role is actpass"),
        (lambda a: mutate(a, "a=setup:active", "a=setup:passive"), None),
        (lambda a: drop_lines(a, "a=fingerprint:"), "no DTLS fingerprint"),
        (lambda a: drop_lines(a, "a=sctp-port:"), "without a=sctp-port"),
        (
            lambda a: mutate(a, "a=recvonly", "a=sendonly"),
            "direction mismatch: the offer is sendonly, the answer sendonly",
        ),
        (lambda a: mutate(a, "a=recvonly", "a=inactive"), "inactive: no media will flow"),
    ],
    ids=[
        "no-candidates",
        "actpass",
        "passive-is-fine",
        "no-fingerprint",
        "no-sctp-port",
        "mismatch",
        "inactive",
    ],
)
def test_breaking_answers(
    real: tuple[str, str], edit: Callable[[str], str], expected: str | None
) -> None:
    pairing = pair(parse(real[0]), parse(edit(real[1])))
    if expected is None:
        assert pairing.warnings == []
    else:
        assert any(expected in w for w in pairing.warnings), pairing.warnings


def test_setup_conflict_and_rejected_line(real: tuple[str, str]) -> None:
    offer = mutate(real[0], "a=setup:actpass", "a=setup:active")
    assert any("both sides are active" in w for w in pair(parse(offer), parse(real[1])).warnings)
    lines = real[1].split("\r\n")
    video = next(i for i, line in enumerate(lines) if line.startswith("m=video"))
    parts = lines[video].split()
    parts[1] = "0"
    lines[video] = " ".join(parts)
    assert any(
        "rejected by the answer (port 0)" in w
        for w in pair(parse(real[0]), parse("\r\n".join(lines))).warnings
    )


def test_browser_offers() -> None:
    chrome = parse((FIXTURES / "chrome-offer.sdp").read_text())
    assert chrome.media[0].ice_options == ["trickle"] and not chrome.media[0].candidates
    red = next(c for c in chrome.media[0].codecs if c.name == "red")
    assert red.fmtp == "111/111" and red.clock_rate == 48000
    assert chrome.media[0].codecs[0].rtcp_fb == ["transport-cc"]
    assert [c.name for c in chrome.media[1].codecs] == ["VP8", "rtx", "H264", "rtx", "AV1", "rtx"]
    assert len(chrome.media[0].header_extensions) == 4
    firefox = parse((FIXTURES / "firefox-offer.sdp").read_text())
    assert firefox.fingerprint and firefox.media[0].fingerprint is None  # session-level only
    assert firefox.ice_options == ["trickle"]
    assert firefox.media[0].codecs[0].fmtp == "maxplaybackrate=48000;stereo=1;useinbandfec=1"
    assert pair(firefox, parse((FIXTURES / "answer-ok.sdp").read_text())).warnings == []


def test_browser_offer_with_a_broken_answer() -> None:
    pairing = pair(
        parse((FIXTURES / "chrome-offer.sdp").read_text()),
        parse((FIXTURES / "answer-broken.sdp").read_text()),
    )
    text = "\n".join(pairing.warnings)
    for expected in (
        "no codec in common",
        "rejected by the answer",
        "without a=sctp-port",
        "no DTLS fingerprint",
        "setup role is actpass",
    ):
        assert expected in text
    assert "no ICE candidates" not in text  # the offer is trickle: candidates may come later


def test_candidate_fields() -> None:
    c = parse_candidate(
        "candidate:842163049 1 udp 1677729535 192.0.2.10 51856 typ srflx raddr 10.0.0.2 rport 50000"
    )
    assert (c.foundation, c.component, c.transport, c.priority) == (
        "842163049",
        1,
        "udp",
        1677729535,
    )
    assert (c.address, c.port, c.type, c.related_address, c.related_port) == (
        "192.0.2.10",
        51856,
        "srflx",
        "10.0.0.2",
        50000,
    )
    assert (
        parse_candidate("1 1 tcp 1518280447 127.0.0.2 9 typ host tcptype active").tcptype
        == "active"
    )


def test_cli_reads_dump_sdp_json_and_hides_passwords(
    cli: Cli, real: tuple[str, str], tmp_path: Path
) -> None:
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps({"offer": {"sdp": real[0], "type": "offer", "candidates": []}, "params": {}})
    )
    response = tmp_path / "response.json"
    response.write_text(
        json.dumps({"conversation_id": "c", "answer": {"sdp": real[1], "type": "answer"}})
    )
    shown = cli(["sdp", str(request)])
    assert shown.exit_code == 0 and shown.stdout.startswith("offer: ")
    assert (
        "m=audio" in shown.stdout
        and "BUNDLE 0 1 2" in shown.stdout
        and "sctp-port 5000" in shown.stdout
    )
    paired = cli(["sdp", str(request), str(response), "--json"])
    data = json.loads(paired.stdout)
    assert data["pairing"]["warnings"] == [] and data["offer"]["media"][0]["kind"] == "audio"
    pwd = next(line for line in real[0].split("\r\n") if line.startswith("a=ice-pwd:")).split(
        ":", 1
    )[1]
    assert pwd not in shown.stdout + paired.stdout
    piped = cli(["sdp", "-"], input=real[1])
    assert "answer" not in piped.stdout.splitlines()[0] and "setup active" in piped.stdout


def test_cli_bad_input(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "x.txt"
    junk.write_text("hello")
    result = cli(["sdp", str(junk)])
    assert result.exit_code == 2 and "not SDP" in result.stderr
    assert cli(["sdp", str(tmp_path / "none.sdp")]).exit_code == 2
    assert load('{"sdp": "v=0\\r\\nm=audio 9 RTP/AVP 0\\r\\n", "type": "offer"}')[1] == "offer"
