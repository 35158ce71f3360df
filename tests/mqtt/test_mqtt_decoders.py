"""Telemetry, status, cue and topic decoders: only TelemetryInvalid, whatever comes in."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleepsync.protocol.errors import TelemetryInvalid
from sleepsync.protocol.telemetry import (
    INVALID_REASONS,
    MAX_TELEMETRY_BYTES,
    Cue,
    PodStatus,
    TelemetrySample,
    VitalSigns,
    decode_cue,
    decode_status,
    decode_telemetry,
    encode_cue,
    encode_status,
    encode_telemetry,
)
from sleepsync.protocol.topics import (
    ALL_STATUS,
    BrokerUrl,
    PodTopic,
    cmd_topic,
    parse_topic,
    pod_ids,
    room_filters,
    status_topic,
    telemetry_topic,
)
from sleepsync.protocol.wire import NAME_RE, ROOM_RE

rooms = st.from_regex(ROOM_RE, fullmatch=True)
names = st.from_regex(NAME_RE, fullmatch=True)
unit = st.floats(0.0, 1.0)
samples = st.builds(
    TelemetrySample,
    pod=names,
    boot=names,
    seq=st.integers(0, 2**53),
    ts=st.floats(0.0, 1e11),
    vitals=st.builds(
        VitalSigns,
        heart_rate=st.floats(20.0, 250.0),
        hrv=st.floats(0.0, 500.0),
        skin_conductance=st.floats(0.0, 100.0),
        respiration=st.floats(2.0, 80.0),
    ),
    valence=unit,
    arousal=unit,
)
wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(samples)
def test_valid_samples_round_trip(sample: TelemetrySample) -> None:
    assert decode_telemetry(encode_telemetry(sample), topic_pod=sample.pod) == sample


@given(st.binary(max_size=2 * MAX_TELEMETRY_BYTES))
def test_arbitrary_bytes_raise_only_telemetry_invalid(data: bytes) -> None:
    for decoder in (decode_telemetry, decode_status, decode_cue):
        try:
            decoder(data)
        except TelemetryInvalid as exc:
            assert exc.reason in INVALID_REASONS


@given(samples, st.text(max_size=10), wire_values)
def test_mutated_samples_raise_only_telemetry_invalid(
    sample: TelemetrySample, key: str, value: object
) -> None:
    wire = {**sample.to_wire(), key: value}
    data = msgpack.packb(wire, use_bin_type=True)
    try:
        decoded = decode_telemetry(data, topic_pod=sample.pod)
    except TelemetryInvalid as exc:
        assert exc.reason in INVALID_REASONS
    else:
        assert decoded.pod == sample.pod


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ({"hr": "fast"}, "bad_field"),
        ({"hr": 900.0}, "out_of_range"),
        ({"valence": -0.1}, "out_of_range"),
        ({"seq": -1}, "out_of_range"),
        ({"pod": "someone-else"}, "pod_mismatch"),
        ({"pad": "x" * 2000}, "oversize"),
        ({"extra": 1}, "bad_field"),
        ({"hr": float("nan")}, "bad_field"),
    ],
)
def test_each_invalid_field_has_its_reason(wire: dict[str, object], reason: str) -> None:
    base = TelemetrySample("lila", "b1", 1, 1.0, VitalSigns(60, 50, 2, 12), 0.5, 0.5)
    data = msgpack.packb({**base.to_wire(), **wire}, use_bin_type=True)
    with pytest.raises(TelemetryInvalid) as info:
        decode_telemetry(data, topic_pod="lila")
    assert info.value.reason == reason


def test_status_and_cue_round_trip() -> None:
    for state in ("online", "offline"):
        status = PodStatus("lila", state)  # type: ignore[arg-type]
        assert decode_status(encode_status(status), topic_pod="lila") == status
        assert decode_status(state.encode(), topic_pod="lila") == status
    cue = Cue("lila", "breathe", 0.5, "room collapsed")
    assert decode_cue(encode_cue(cue)) == cue


@given(rooms, names)
def test_topics_round_trip(room: str, pod: str) -> None:
    assert parse_topic(telemetry_topic(room, pod)) == PodTopic(room, pod, "telemetry")
    assert parse_topic(status_topic(room, pod)) == PodTopic(room, pod, "status")
    assert parse_topic(cmd_topic(room, pod)) == PodTopic(room, pod, "cmd")


@given(st.text(max_size=300))
def test_arbitrary_topics_raise_only_wrong_topic(topic: str) -> None:
    try:
        parse_topic(topic)
    except TelemetryInvalid as exc:
        assert exc.reason == "wrong_topic"


@pytest.mark.parametrize(
    "topic",
    [
        "sleepsync/v1/rooms/r1/pods/lila/telemetry/extra",
        "sleepsync/v2/rooms/r1/pods/lila/telemetry",
        "sleepsync/v1/rooms/R1/pods/lila/telemetry",
        "sleepsync/v1/rooms/r1/pods/li+la/telemetry",
        "sleepsync/v1/rooms/r1/pods/lila/vitals",
        "sleepsync/v1/rooms/r1/users/lila/telemetry",
        "x" * 300,
    ],
)
def test_wrong_topic_shapes(topic: str) -> None:
    with pytest.raises(TelemetryInvalid, match="wrong_topic"):
        parse_topic(topic)


def test_subscription_filters() -> None:
    assert room_filters("r1") == (
        "sleepsync/v1/rooms/r1/pods/+/telemetry",
        "sleepsync/v1/rooms/r1/pods/+/status",
    )
    assert ALL_STATUS == "sleepsync/v1/rooms/+/pods/+/status"
    assert pod_ids(3) == ["pod-001", "pod-002", "pod-003"]
    assert pod_ids(1000)[-1] == "pod-1000"


def test_broker_urls() -> None:
    url = BrokerUrl.parse("mqtt://user:p%40ss@broker.example:1884")
    assert url == BrokerUrl("broker.example", 1884, "user", "p@ss")
    assert str(url) == "mqtt://user@broker.example:1884"  # no password in logs
    assert BrokerUrl.parse("mqtt://localhost") == BrokerUrl("localhost", 1883)
    for bad in ("http://host", "mqtt://", "mqtt://host:99999", "mqtt://host/path"):
        with pytest.raises(ValueError, match="MQTT URL") as info:
            BrokerUrl.parse(bad)
        assert "secret" not in str(info.value)
    with pytest.raises(ValueError) as info:
        BrokerUrl.parse("http://u:secret@host")
    assert "secret" not in str(info.value)


@given(st.text(max_size=60))
def test_broker_url_parse_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        BrokerUrl.parse(text)
