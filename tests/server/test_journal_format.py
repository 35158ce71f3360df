"""The journal file format: round trips bit for bit, and refuses bad files with one clear error."""

from __future__ import annotations

import contextlib
import gzip
import math
import struct
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleepsync.server.engine import Engine
from sleepsync.server.journal import files
from sleepsync.server.journal.codec import JournalDecoder, JournalEncoder
from sleepsync.server.journal.files import JournalFile, JournalReader
from sleepsync.server.journal.replay import replay
from sleepsync.server.journal.schema import MAGIC, JournalError, JournalTick, Segment
from sleepsync.server.journal.tap import EngineTap, JournalWriter

from journals import FAST, record, schedule, stripped

NIGHT, NIGHT_TICKS, NIGHT_ENGINE = record(schedule(120))


def records(data: bytes) -> list[list[object]]:
    raw = msgpack.Unpacker(raw=False)
    raw.feed(data[len(MAGIC) :])
    return list(raw)


def read_all(data: bytes) -> tuple[JournalReader, list[JournalTick]]:
    reader = JournalReader(data)
    return reader, list(reader.ticks())


class TestRoundTrip:
    def test_every_tick_comes_back_as_it_was_recorded(self) -> None:
        reader, ticks = read_all(NIGHT)
        assert ticks == stripped(NIGHT_TICKS)
        assert reader.header.room == "night" and reader.header.config == FAST
        assert reader.header.segment == Segment(node="test", created=1.0)
        assert reader.end is not None and reader.end.reason == "export"
        assert reader.end.hash == NIGHT_ENGINE.state_hash()
        assert reader.end.tick == NIGHT_ENGINE.tick == 120

    def test_it_records_every_input_kind_and_no_vital_signs(self) -> None:
        kinds = {type(i).__name__ for t in NIGHT_TICKS for i in t.inputs}
        assert kinds == {
            "DreamerJoined", "DreamerLeft", "Telemetry", "PodOffline", "PodFault",
            "GlitchInjected", "TemplateUploaded", "StoryLine",
        }  # fmt: skip
        for heart in (b"61.0", struct.pack(">d", 61.0), struct.pack(">d", 55.0)):
            assert heart not in NIGHT
        _, ticks = read_all(NIGHT)
        samples = [i.sample for t in ticks for i in t.inputs if hasattr(i, "sample")]
        assert {s.vitals.heart_rate for s in samples} == {0.0}

    def test_templates_are_stored_once_and_their_uses_listed(self) -> None:
        reader, _ = read_all(NIGHT)
        uses = reader.template_uses()
        assert [(u.title, u.tick, u.author) for u in uses] == [
            ("The Shared Night", None, None),
            ("Static", 20, "rico"),
        ]
        assert [r[0] for r in records(NIGHT)].count("P") == 2

    def test_a_replay_of_it_is_bit_exact(self) -> None:
        result = replay(JournalReader(NIGHT))
        assert result.exact and result.ticks == 120 and result.hashes == 13

    def test_quiet_ticks_are_skipped_and_stepped_again(self) -> None:
        batches = [[], [], *schedule(10), [], [], []]
        data, ticks, engine = record(batches, quiet_before=5, hash_every=1000)
        reader, read = read_all(data)
        assert read == stripped(ticks) and reader.header.start_tick == 5
        assert read[0].tick == 7  # two quiet ticks (no dreamers yet) are not written
        result = replay(JournalReader(data))
        assert result.exact and result.final_tick == engine.tick == 20

    def test_a_journal_bigger_than_a_record_reads_from_bytes_and_files(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(files, "MAX_RECORD", 8192)  # NIGHT is bigger: read in pieces
        monkeypatch.setattr(files, "CHUNK", 1024)
        assert len(NIGHT) > 3 * 8192
        assert list(JournalReader(NIGHT).ticks()) == stripped(NIGHT_TICKS)
        path = tmp_path / "night.ssj"
        path.write_bytes(NIGHT)
        assert list(JournalReader(path).ticks()) == stripped(NIGHT_TICKS)

    def test_gzip_is_the_same_journal(self, tmp_path: Path) -> None:
        path = tmp_path / "night.ssj.gz"
        path.write_bytes(gzip.compress(NIGHT))
        reader = JournalReader(path)
        assert list(reader.ticks()) == stripped(NIGHT_TICKS)

    def test_a_file_being_written_reads_up_to_its_last_flush(self, tmp_path: Path) -> None:
        path = tmp_path / "live.ssj.gz"
        engine = Engine(3, FAST)
        tap = EngineTap(engine, 5)
        sink = JournalFile(path)
        writer = JournalWriter(sink, tap, room="live", segment=Segment())
        for batch in schedule(30):
            tap.step(batch)
            writer.write(tap.take())
        sink.flush()
        reader = JournalReader(path)
        ticks = list(reader.ticks())
        assert ticks and reader.end is None  # no end record yet: the file is still open
        result = replay(JournalReader(path))
        assert result.exact and result.end is None
        writer.finish("closed")
        sink.close()
        assert JournalReader(path).header.room == "live"


class TestNumberChannels:
    @settings(max_examples=500)
    @given(st.lists(st.floats() | st.integers(-(2**63), 2**63 - 1) | st.none()))
    def test_any_value_comes_back_bit_for_bit(self, values: list[object]) -> None:
        enc, dec = JournalEncoder(), JournalDecoder()
        for x in values:
            coded = enc._milli("x", 0, x)
            back = dec._number("x", 0, msgpack.unpackb(msgpack.packb(coded)), "x")
            assert type(back) is type(x)
            if isinstance(x, float):
                assert struct.pack(">d", back) == struct.pack(">d", x)  # type: ignore[arg-type]
            else:
                assert back == x

    def test_three_decimals_cost_a_byte_or_two(self) -> None:
        enc = JournalEncoder()
        sizes = [len(msgpack.packb(enc._milli("v", 0, v))) for v in (0.512, 0.514, 0.498, 0.7)]
        assert sizes == [3, 1, 1, 2]
        assert enc._milli("v", 1, 0.1 + 0.2) == 0.1 + 0.2  # not a three-decimal float: as is
        zero = enc._milli("v", 1, -0.0)  # nor is -0.0
        assert isinstance(zero, float) and math.copysign(1.0, zero) < 0
        assert math.isnan(enc._milli("v", 1, math.nan))  # type: ignore[arg-type]
        assert enc._milli("s", 1, None) == [None] and enc._milli("s", 1, 3) == [3]


def mutations() -> st.SearchStrategy[bytes]:
    """The night's bytes, damaged: cut, a byte changed, a run inserted or deleted."""
    n = len(NIGHT)
    cut = st.integers(0, n - 1).map(lambda k: NIGHT[:k])
    flip = st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
        lambda p: NIGHT[: p[0]] + bytes([p[1]]) + NIGHT[p[0] + 1 :]
    )
    insert = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=12)).map(
        lambda p: NIGHT[: p[0]] + p[1] + NIGHT[p[0] :]
    )
    delete = st.tuples(st.integers(0, n - 1), st.integers(1, 40)).map(
        lambda p: NIGHT[: p[0]] + NIGHT[p[0] + p[1] :]
    )
    return st.one_of(cut, flip, insert, delete)


class TestBadFiles:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutations(), st.booleans())
    def test_a_damaged_journal_reads_or_fails_with_one_clear_error(
        self, data: bytes, compress: bool
    ) -> None:
        if compress:
            data = gzip.compress(data)
        try:
            result = replay(JournalReader(data))
        except JournalError as exc:
            assert exc.message.startswith("journal")
            return
        assert result.ticks >= 0  # read, replayed: exact or naming a tick

    @settings(max_examples=300)
    @given(st.binary(max_size=300))
    def test_any_bytes_after_the_magic_fail_cleanly(self, tail: bytes) -> None:
        with contextlib.suppress(JournalError):
            list(JournalReader(MAGIC + tail).ticks())

    @settings(max_examples=300)
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats()
            | st.text(max_size=8)
            | st.binary(max_size=8)
            | st.sampled_from(["t", "m", "w", "u"]),
            lambda inner: (
                st.lists(inner, max_size=6)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=20,
        )
    )
    def test_any_record_after_the_header_fails_cleanly(self, record: object) -> None:
        head = NIGHT[: NIGHT.index(b"\x94\xa1K")]  # everything before the first tick record
        data = head + msgpack.packb(["K", 0, [record], [record]]) + msgpack.packb(record)
        with contextlib.suppress(JournalError):
            list(JournalReader(data).ticks())

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "not a SleepSync journal (too short)"),
            (b"hello, world", "not a SleepSync journal"),
            (MAGIC, "holds no header"),
            (NIGHT[:-3], "truncated: the file ends inside record"),
            (MAGIC + msgpack.packb(["K", 0]), "the file must start with its header"),
            (gzip.compress(NIGHT)[:-30], "truncated"),
            (gzip.compress(NIGHT)[:10] + b"\xff" * 40, "corrupt compressed data"),
            (gzip.compress(NIGHT) + b"more", "data after the end of the compressed journal"),
            (NIGHT + msgpack.packb(["K", 0]), "nothing may follow the end record"),
        ],
    )
    def test_each_problem_is_named(self, data: bytes, message: str) -> None:
        with pytest.raises(JournalError, match=message.replace("(", r"\(").replace(")", r"\)")):
            list(JournalReader(data).ticks())

    def test_another_format_version_is_refused(self) -> None:
        doc = records(NIGHT)
        doc[0][1]["format"] = 2  # type: ignore[index]
        data = MAGIC + b"".join(msgpack.packb(r, use_bin_type=True) for r in doc)
        with pytest.raises(JournalError, match="reads journal format 1, not 2"):
            JournalReader(data)

    def test_a_changed_start_state_is_caught(self) -> None:
        doc = records(NIGHT)
        doc[0][1]["start"]["state"] += b"\x00"  # type: ignore[index]
        data = MAGIC + b"".join(msgpack.packb(r, use_bin_type=True) for r in doc)
        with pytest.raises(JournalError, match="start state does not match its hash"):
            replay(JournalReader(data))

    def test_a_file_that_cannot_be_opened(self, tmp_path: Path) -> None:
        with pytest.raises(JournalError, match="cannot open"):
            JournalReader(tmp_path / "missing.ssj")

    def test_a_record_too_big(self) -> None:
        big = MAGIC + msgpack.packb(["N", "x" * 100]) + b"\xdb" + struct.pack(">I", 1 << 30)
        with pytest.raises(JournalError):
            list(JournalReader(big).ticks())

    def test_decompression_is_bounded_per_step(self) -> None:
        bomb = zlib.compress(b"\x00" * (8 << 20))  # not gzip: read as plain, refused
        with pytest.raises(JournalError, match="not a SleepSync journal"):
            JournalReader(bomb)
