"""``sleepsync journal …`` and ``sleepsync replay``: exit codes, output, files written."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sleepsync.cli import main
from sleepsync.server.engine import Telemetry
from sleepsync.server.journal.codec import JournalEncoder
from sleepsync.server.journal.files import JournalReader
from sleepsync.server.journal.scenario import lighthouse_template

from nodes import Recorder, running_node, wait_for

TAMPERED_TICK = 1500
SCENARIOS = Path(__file__).resolve().parents[1] / "server" / "journal" / "scenarios"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nights") / "lighthouse.ssj.gz"
    assert main(["journal", "scenario", "lighthouse-night", "--out", str(path)]) == 0
    return path


def tamper(source: Path, target: Path) -> None:
    """The same journal with one telemetry value changed at TAMPERED_TICK."""
    reader = JournalReader(source)
    ticks = list(reader.ticks())
    k = next(i for i, t in enumerate(ticks) if t.tick == TAMPERED_TICK)
    inputs = list(ticks[k].inputs)
    first = inputs[0]
    assert isinstance(first, Telemetry)
    inputs[0] = Telemetry(replace(first.sample, valence=0.0))
    ticks[k] = replace(ticks[k], inputs=tuple(inputs))
    enc = JournalEncoder()
    assert reader.end is not None
    data = enc.header(reader.header, reader.start_narrative)
    data += b"".join(enc.tick(t) for t in ticks) + enc.end(reader.end)
    target.write_bytes(data)


class TestReplay:
    def test_a_good_journal_is_bit_exact(
        self, night: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["replay", str(night)]) == 0
        out = capsys.readouterr().out
        assert out.startswith("bit-exact: 4800 ticks (481 state hashes checked")

    def test_a_changed_journal_names_the_first_tick_that_differs(
        self, night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "tampered.ssj"
        tamper(night, bad)
        assert main(["replay", str(bad)]) == 1
        out = capsys.readouterr().out
        assert out.startswith(f"differs at tick {TAMPERED_TICK} (2:30 into the night): items:")

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"not a journal at all", "not a SleepSync journal"),
            (b"\x89SSJ\r\n\x1a\n\x92\xa1H", "truncated"),
            (gzip.compress(b"\x89SSJ\r\n\x1a\n\x92\xa1K\x00"), "must start with its header"),
        ],
    )
    def test_an_unreadable_file_is_one_line_and_status_2(
        self, tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "bad.ssj"
        path.write_bytes(content)
        assert main(["replay", str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "Traceback" not in captured.err
        assert captured.err.count("\n") == 1 and message in captured.err

    def test_a_cut_journal_replays_what_it_holds_and_says_so(
        self, night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data = gzip.decompress(night.read_bytes())
        cut = tmp_path / "cut.ssj"
        cut.write_bytes(data[: data.rindex(b"\x92\xa1E")])  # without the end record
        assert main(["replay", str(cut)]) == 0
        assert "no end record" in capsys.readouterr().out

    def test_follow_prints_the_night_as_dream_would(
        self, night: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["replay", str(night), "--follow", "--speed", "5000", "--json"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:-1]]
        kinds = {line["type"] for line in lines}
        assert {"mood", "said", "nightmare_released", "circle_opened", "phase"} <= kinds
        assert all(line["room"] == "lighthouse" for line in lines)
        seqs = [line["seq"] for line in lines]
        assert seqs == sorted(seqs)

    def test_follow_options_need_follow(
        self, night: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["replay", str(night), "--speed", "2"]) == 2
        assert "go with --follow" in capsys.readouterr().err


class TestWhatIf:
    def test_another_template_and_settings_are_compared_side_by_side(
        self, night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        calm = tmp_path / "calm.json"
        calm.write_text(json.dumps(_wire(lighthouse_template())))
        code = main(
            ["replay", str(night), "--template", str(calm), "--set", "engine.fragility_gain=0"]
        )
        assert code == 0
        out = capsys.readouterr().out
        assert "what-if (template calm.json, fragility_gain=0)" in out
        rows = {line.split("  ")[0]: line for line in out.splitlines()}
        for row in ("time collapsed", "lowest balance", "collapses", "time to recover",
                    "glitches started", "glitches spread", "nightmare releases"):  # fmt: skip
            assert row in rows, row
        assert rows["collapses"].split()[1:] == ["1", "0"]
        assert rows["nightmare releases"].split()[2:] == ["4", "0"]

    @pytest.mark.parametrize(
        ("setting", "message"),
        [
            ("engine.tick_hz=5", "ticks are the journal's clock"),
            ("engine.weather=1", "expected engine.KEY=VALUE"),
            ("fragility_gain=1", "expected engine.KEY=VALUE"),
            ("engine.fragility_gain=lots", "is not a number"),
            ("engine.collapse_below=0.9", "need collapse_below"),
        ],
    )
    def test_a_bad_setting_is_refused(
        self, night: Path, setting: str, message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["replay", str(night), "--set", setting]) == 2
        assert message in capsys.readouterr().err

    def test_a_bad_template_is_refused_naming_the_problem(
        self, night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text('{"title": "x"}')
        assert main(["replay", str(night), "--template", str(bad)]) == 2
        assert "bad.json: $" in capsys.readouterr().err


class TestJournalCommands:
    def test_plot_writes_png_and_a_what_if_svg(self, night: Path, tmp_path: Path) -> None:
        png, svg = tmp_path / "night.png", tmp_path / "night.svg"
        assert main(["journal", "plot", str(night), "--out", str(png)]) == 0
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 50_000
        args = [
            "journal",
            "plot",
            str(night),
            "--out",
            str(svg),
            "--set",
            "engine.fragility_gain=0",
        ]
        assert main(args) == 0
        text = svg.read_text()
        assert text.lstrip().startswith("<?xml") and "fragility_gain=0" in text

    def test_info_tells_what_the_file_holds(
        self, night: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["journal", "info", str(night)]) == 0
        out = capsys.readouterr().out
        assert "room      lighthouse" in out
        assert "“Beyond the Static” at 1:40 by rico" in out
        assert "end       closed at tick 4800" in out

    async def test_export_asks_a_server(self, tmp_path: Path) -> None:
        out = tmp_path / "harbour.ssj.gz"
        async with running_node() as node:
            from sleepsync.client.connection import RoomClient

            async with Recorder(RoomClient(node.url, "harbour", "lila")) as rec:
                await wait_for(lambda: len(rec.events()) >= 5, what="a few ticks")
                argv = ["journal", "export", "harbour", "--server", node.url, "--out", str(out)]
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "sleepsync", *argv,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                stdout, stderr = await proc.communicate()
                missing = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "sleepsync", "journal", "export", "nowhere",
                    "--server", node.url, "--out", str(tmp_path / "x.ssj"),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                _out2, err2 = await missing.communicate()
        assert proc.returncode == 0, stderr.decode()
        assert stdout.decode().startswith(f"wrote {out}: room harbour, ticks 0 to ")
        assert gzip.decompress(out.read_bytes()).startswith(b"\x89SSJ")
        assert missing.returncode == 1 and b"no_history" in err2
        # a freshly recorded room: replayed, a what-if, a picture
        assert main(["replay", str(out)]) == 0
        assert main(["replay", str(out), "--set", "engine.scene_pull=0.5"]) == 0
        png = tmp_path / "harbour.png"
        whatif = ["--template", str(SCENARIOS / "beyond_the_static.json")]
        assert main(["journal", "plot", str(out), "--out", str(png), *whatif]) == 0
        assert png.read_bytes().startswith(b"\x89PNG")


def _wire(template: object) -> object:
    from sleepsync.protocol.narrative import template_to_wire

    return template_to_wire(template)  # type: ignore[arg-type]
