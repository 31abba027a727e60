"""One guard per private aiortc/aioice internal orga uses (orga_cli/seams.py).

If one of these fails after an upgrade, the seam it names has moved: fix it in
seams.py before moving the version cap in pyproject.toml.
"""

from __future__ import annotations

import inspect
import logging

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from orga_cli import seams


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """Two aiortc peers in this process, connected over loopback (audio + data)."""
    a, b = RTCPeerConnection(), RTCPeerConnection()
    a.addTransceiver("audio", direction="sendrecv")
    a.createDataChannel("x")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(RTCSessionDescription(b.localDescription.sdp, "answer"))
    return a, b


async def test_seam_1_receiver_jitter_buffer() -> None:
    pc = RTCPeerConnection()  # aiortc wants a running loop for its objects
    try:
        receiver = pc.addTransceiver("audio").receiver
        assert hasattr(receiver, seams.RECEIVER_JITTER_BUFFER)
        stand_in = object()
        seams.replace_jitter_buffer(receiver, stand_in)
        assert getattr(receiver, seams.RECEIVER_JITTER_BUFFER) is stand_in
        with pytest.raises(seams.SeamMissing):
            seams.replace_jitter_buffer(object(), stand_in)
    finally:
        await pc.close()


async def test_seam_2_gathering_bound() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        pc.createDataChannel("x")
        offer = await pc.createOffer()
        seams.bound_gathering(pc, 0.5)
        connections = seams._ice_connections(pc, gatherer=True)
        assert connections, "no aioice Connection behind the transports"
        for conn in connections:
            assert conn.get_component_candidates.keywords == {"timeout": 0.5}
            params = inspect.signature(conn.get_component_candidates.func).parameters
            assert "timeout" in params, "aioice no longer takes a gathering timeout"
        await pc.setLocalDescription(offer)  # gathering still works with the bound
        assert "a=candidate:" in pc.localDescription.sdp
    finally:
        await pc.close()


@pytest.mark.timeout(30)
async def test_seam_3_nominated_pair() -> None:
    import asyncio

    a, b = await connected_pair()
    try:
        for _ in range(200):
            if a.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        pair = seams.nominated_pair(a)
        assert pair is not None, "aioice has no _nominated pair on a connected call"
        local, remote = pair
        assert local.type == "host" and remote.port > 0
    finally:
        await a.close()
        await b.close()


def test_seam_4_dtls_failure_reason() -> None:
    import aiortc.rtcdtlstransport as dtls

    source = inspect.getsource(dtls)
    assert seams.DTLS_FAILED + "fingerprint mismatch)" in source, (
        "aiortc no longer logs why a DTLS handshake failed"
    )
    assert logging.getLogger(seams.DTLS_LOGGER) is logging.getLogger(dtls.__name__)
    handler = seams.DtlsFailureReason()
    handler.attach()
    try:
        logging.getLogger(seams.DTLS_LOGGER).debug("x DTLS handshake failed (fingerprint mismatch)")
        assert handler.reason == "fingerprint mismatch"
    finally:
        handler.detach()
