"""Telemetry, status, cue and topic decoders: only TelemetryInvalid, whatever comes in."""

from __future__ import annotations

import contextlib
import ssl

import msgpack
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
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
    explain_connect_error,
    parse_topic,
    pod_ids,
    room_filters,
    status_topic,
    telemetry_topic,
)
from sleepsync.protocol.wire import NAME_RE, ROOM_RE
from sleepsync.server.pod_tracker import REFUSE_REASONS

from nodes import running_node

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


@pytest.mark.parametrize("field", ["hr", "hrv", "eda", "resp"])
def test_a_bad_vital_sign_is_refused_without_its_name_or_value(field: str) -> None:
    base = TelemetrySample("lila", "b1", 1, 1.0, VitalSigns(60, 50, 2, 12), 0.5, 0.5)
    for bad, reason in ((987.654, "out_of_range"), ("987.654", "bad_field")):
        data = msgpack.packb({**base.to_wire(), field: bad}, use_bin_type=True)
        with pytest.raises(TelemetryInvalid) as info:
            decode_telemetry(data, topic_pod="lila")
        assert info.value.reason == reason
        assert "vital sign" in info.value.message and "987" not in info.value.message
        assert field not in info.value.message.split()
        assert info.value.__cause__ is None, "nor in a traceback"


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
    assert "p@ss" not in repr(url)
    assert BrokerUrl.parse("mqtts://u:pw@broker.example") == BrokerUrl(
        "broker.example", 8883, "u", "pw", tls=True
    )
    assert str(BrokerUrl.parse("ssl://h:9999")) == "mqtts://h:9999"
    assert BrokerUrl.parse("mqtt://localhost") == BrokerUrl("localhost", 1883)
    for bad in ("http://host", "mqtt://", "mqtt://host:99999", "mqtt://host/path"):
        with pytest.raises(ValueError, match="MQTT URL") as info:
            BrokerUrl.parse(bad)
        assert "secret" not in str(info.value)
    with pytest.raises(ValueError) as info:
        BrokerUrl.parse("http://u:secret@host")
    assert "secret" not in str(info.value)


def test_a_password_from_a_file_goes_in_one_place() -> None:
    url = BrokerUrl.parse("mqtt://u@h").with_password("from-file")
    assert url.password == "from-file" and "from-file" not in f"{url} {url!r}"
    with pytest.raises(ValueError, match="already carries a password") as info:
        BrokerUrl.parse("mqtt://u:in-url@h").with_password("from-file")
    assert "in-url" not in str(info.value) and "from-file" not in str(info.value)


def test_tls_contexts() -> None:
    ca = trustme.CA()
    assert BrokerUrl.parse("mqtt://h").tls_context() is None
    with pytest.raises(ValueError, match="needs an mqtts:// URL"):
        BrokerUrl.parse("mqtt://h").tls_context(ca.cert_pem.bytes().decode())
    context = BrokerUrl.parse("mqtts://h").tls_context(ca.cert_pem.bytes().decode())
    assert context is not None and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert BrokerUrl.parse("mqtts://h").tls_context() is not None  # the system's CAs
    for bad in ("not a certificate", ""):
        with pytest.raises(ValueError, match="no usable PEM"):
            BrokerUrl.parse("mqtts://h").tls_context(bad)


def test_connect_errors_are_explained_without_the_password() -> None:
    url = BrokerUrl.parse("mqtts://u:s3cret@h:8883")
    untrusted = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    assert "pass the CA file" in explain_connect_error(untrusted, url)
    plain = "[SSL: WRONG_VERSION_NUMBER] wrong version number"
    assert "use an mqtt:// URL" in explain_connect_error(plain, url)
    assert explain_connect_error("refused by s3cret", url) == "refused by ***"
    assert explain_connect_error(TimeoutError(), url) == "TimeoutError"


@given(st.text(max_size=60))
def test_broker_url_parse_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        BrokerUrl.parse(text)


# ---------------------------------------------------------------- the ingest, fed anything
few_rooms = st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6"])
few_pods = st.sampled_from(["lila", "mallory", "pod-001"])
hostile_samples = st.builds(
    TelemetrySample,
    pod=few_pods,
    boot=st.sampled_from(["b1", "b2", "b3", "b4"]),
    seq=st.integers(0, 2**53),
    ts=st.floats(0.0, 1e11),
    vitals=st.just(VitalSigns(60.0, 50.0, 2.0, 12.0)),
    valence=unit,
    arousal=unit,
)
messages = st.one_of(
    st.tuples(st.builds(telemetry_topic, few_rooms, few_pods), st.binary(max_size=64)),
    st.tuples(
        st.builds(telemetry_topic, few_rooms, few_pods),
        hostile_samples.map(encode_telemetry),
    ),
    st.tuples(
        st.builds(status_topic, few_rooms, few_pods),
        st.sampled_from(
            [b"online", b"offline", b"\xc1", encode_status(PodStatus("lila", "online"))]
        ),
    ),
    st.tuples(st.text(max_size=80), st.binary(max_size=32)),
)


async def test_the_ingest_survives_any_message_stream() -> None:
    """Any mix of garbage, hostile samples (any seq, ts, boot) and statuses in any
    rooms: ``Ingest.handle`` never raises, drops are counted by reason, and the
    pure bookkeeping behind it stays within its bounds."""
    async with running_node(
        mqtt=True, mqtt_url="mqtt://127.0.0.1:1", mqtt_pod_rooms_per_hour=2
    ) as node:
        ingest = node.ingest
        assert ingest is not None
        for room in ("r1", "r2"):
            await node.rooms.open_room(room)

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(messages, max_size=60))
        def feed(items: list[tuple[str, bytes]]) -> None:
            for topic, payload in items:
                ingest.handle(topic, payload)
            for pod in ("lila", "mallory", "pod-001"):
                assert len(ingest.pod_rooms.rooms(pod)) <= 2
                stats = ingest.tracker.stats(pod)
                assert len(stats.boots) <= ingest.tracker.boots_per_pod
                assert len(stats.retired) <= ingest.tracker.retired_boots

        feed()
        refused = sum(
            node.metrics.value("sleepsync_mqtt_refused_total", reason=reason)
            for reason in ("room_limit", *REFUSE_REASONS)
        )
        assert refused > 0
        assert node.metrics.value("sleepsync_telemetry_invalid_total", reason="internal") == 0
