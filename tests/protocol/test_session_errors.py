"""README's error table and limits table are the code's, and the other way round."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgpack

import sleepsync.server.node  # noqa: F401  (loads every error class a server can send)
from sleepsync.protocol import narrative
from sleepsync.protocol.errors import peer_errors
from sleepsync.protocol.messages import MAX_TEMPLATE_TEXT, MAX_TOKEN, UploadTemplate
from sleepsync.protocol.session import ERROR_REACTIONS
from sleepsync.protocol.wire import DEFAULT_LIMITS, MAX_FRAME, MAX_TEXT
from sleepsync.server.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

#: Errors of the server's own parts that are never sent to a websocket peer.
#: Their modules belong to other parts; they could say ``peer=False`` instead.
KEPT_INSIDE = {
    "fenced": "an owner's append refused for a stale epoch, handled by the tick loop",
    "broker_unavailable": "the embedded MQTT broker did not start: a startup failure",
}


def error_table() -> dict[str, tuple[str, str]]:
    """code -> (close, client) from the README's error table."""
    body = README.split("<!-- error-table:start -->")[1].split("<!-- error-table:end -->")[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        code = cells[0].strip("`")
        assert code not in rows, f"{code} twice in the README"
        rows[code] = (cells[1], cells[-1])
    return rows


def sent_codes() -> dict[str, int | None]:
    import sleepsync.server.broker  # noqa: F401

    classes = [cls for cls in peer_errors() if cls.code not in KEPT_INSIDE]
    counts = Counter(cls.code for cls in classes)
    assert not [code for code, n in counts.items() if n > 1], "one code, one condition"
    return {cls.code: cls.close_code for cls in classes}


def test_the_error_table_lists_exactly_the_codes_a_peer_can_get() -> None:
    assert set(error_table()) == set(sent_codes())


def test_the_close_codes_in_the_table_are_the_errors() -> None:
    sent = sent_codes()
    for code, (close, _) in error_table().items():
        expected = "—" if sent[code] is None else str(sent[code])
        assert close == expected, code


def test_the_client_column_is_what_the_client_session_does() -> None:
    table = {code: client.replace(" ", "_") for code, (_, client) in error_table().items()}
    assert table == dict(ERROR_REACTIONS)


def test_kept_inside_errors_exist() -> None:
    assert set(KEPT_INSIDE) <= {cls.code for cls in peer_errors()}


def row(what: str) -> str:
    found = re.search(rf"^\| {re.escape(what)} \| (.*) \|$", README, re.M)
    assert found is not None, what
    return found.group(1)


def test_the_limits_table_states_the_codes_limits() -> None:
    assert row("`upload_template.text`").startswith(f"{MAX_TEMPLATE_TEXT:,} bytes of UTF-8")
    assert row("`say.text`").startswith(f"1\N{EN DASH}{MAX_TEXT} characters")
    assert row("`hello.token`").startswith(f"{MAX_TOKEN} characters")
    inside = row("inside a frame")
    limits = DEFAULT_LIMITS
    assert limits.max_str is None and limits.max_bin is None  # as long as the frame
    for figure in (f"{limits.max_array:,} items", f"{limits.max_map} keys", f"{limits.max_depth}"):
        assert figure in inside, figure
    template = row("a template")
    for figure in (
        f"{narrative.MAX_SCENES} scenes",
        f"{narrative.MAX_TRANSITIONS} transitions",
        f"{narrative.MAX_SCENE_TEXT:,}-character",
        f"{narrative.MAX_TITLE}-character",
        f"depth {narrative.MAX_TEMPLATE_DEPTH}",
        f"{narrative.MAX_TEMPLATE_NODES:,} values",
    ):
        assert figure in template, figure


def test_a_template_of_the_documented_size_fits_a_default_frame_and_the_codec() -> None:
    assert Settings().max_frame_bytes == MAX_FRAME == DEFAULT_LIMITS.max_frame
    longest = UploadTemplate("r" * 48, "json", "x" * MAX_TEMPLATE_TEXT).to_wire()
    assert len(msgpack.packb(longest)) <= MAX_FRAME
    assert DEFAULT_LIMITS.str_limit >= MAX_TEMPLATE_TEXT
    assert MAX_TEMPLATE_TEXT <= narrative.MAX_TEMPLATE_BYTES
