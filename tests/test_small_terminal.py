"""80x24 as a first-class size, and 60x20 still readable: every panel reachable, the
footer's `?` and `q` kept, help that scrolls and says how to close, status words whole,
and a header whose two lines survive hosts that are down."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text
from textual.widgets._footer import FooterKey

from console.link import LinkStatus
from console.models import STATE_LABELS
from console.screens.help import HelpScreen
from console.widgets.claude_log import ClaudeLog
from console.widgets.diff_view import DiffView
from console.widgets.errors_table import PADDING, layout
from console.widgets.footer import DecisionFooter
from console.widgets.header import StatusHeader, fit_words
from tests.snapshot_store import filled_app, settle


def footer_keys(app) -> list[str]:
    return [key.key for key in app.screen.query(FooterKey) if key.display]


async def test_at_80x24_v_swaps_the_claude_and_diff_panels(tmp_path: Path) -> None:
    async with filled_app(tmp_path) as app, app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        claude, diff = app.screen.query_one(ClaudeLog), app.screen.query_one(DiffView)
        assert (claude.display, diff.display) == (True, False)
        await pilot.press("v")
        await pilot.pause()
        assert (claude.display, diff.display) == (False, True)
        assert diff.region.height >= 4, "the diff panel has room to show the diff"
        await pilot.press("v")
        await pilot.pause()
        assert (claude.display, diff.display) == (True, False)


async def test_wide_terminals_show_both_panels_and_no_swap_key(tmp_path: Path) -> None:
    async with filled_app(tmp_path) as app, app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(ClaudeLog).display and app.screen.query_one(DiffView).display
        assert "v" not in footer_keys(app)
        await pilot.press("v")
        await pilot.pause()
        assert app.screen.query_one(DiffView).display and app.screen.query_one(ClaudeLog).display


async def test_the_footer_keeps_help_and_quit_and_every_decision_key_at_80(
    tmp_path: Path,
) -> None:
    async with filled_app(tmp_path) as app, app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert footer_keys(app) == ["question_mark", "q", "a", "s", "r", "d", "v", "x",
                                    "slash", "t"]  # fmt: skip
        keys = [k for k in app.screen.query(FooterKey) if k.display]
        assert max(k.region.right for k in keys) <= 80, "nothing is cut at the right edge"
        # Narrower still, the first two stay: they come first.
        await pilot.resize_terminal(60, 20)
        await pilot.pause(0.2)
        visible = [k.key for k in app.screen.query(FooterKey) if k.region.right <= 60]
        assert visible[:2] == ["question_mark", "q"]
        # Back to wide: the whole bar with the palette, the detail and sort keys again.
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.2)
        assert {"enter", "S", "o", "ctrl+p"} <= set(footer_keys(app))


async def test_help_scrolls_at_80x24_and_says_how_to_close(tmp_path: Path) -> None:
    async with filled_app(tmp_path) as app, app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        help_screen = await _until_help(pilot)
        box = help_screen.query_one(".dialog")
        assert box.border_subtitle == "↑↓ scroll · escape, ? or q closes"
        body = help_screen.query_one(".dialog-body")
        assert body.max_scroll_y > 0, "at 80x24 the keys do not fit: the help scrolls"
        await pilot.press("end")
        await pilot.pause(0.5)
        assert body.scroll_y > 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def _until_help(pilot) -> HelpScreen:
    for _ in range(100):
        if isinstance(pilot.app.screen, HelpScreen):
            return pilot.app.screen
        await pilot.pause(0.02)
    raise AssertionError("help did not open")


async def test_two_hosts_down_keep_the_claude_line_and_whole_words(tmp_path: Path) -> None:
    reason = "[Errno -2] Name or service not known: prod-1.example.com"
    async with filled_app(tmp_path) as app, app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(StatusHeader)
        header.set_links(
            [
                LinkStatus("prod-1", "reconnecting", last_seq=74, error=reason),
                LinkStatus("prod-2", "error", last_seq=73, error="agent exited with status 127"),
            ]
        )
        await pilot.pause()
        hosts, status = str(header.render()).split("\n")
        width = header.content_size.width
        assert len(hosts) <= width and len(status) <= width
        assert "prod-1" in hosts and "prod-2" in hosts
        assert status.startswith("Claude ") and status.endswith("Telegram off")
        for shown in hosts.split("   "):
            assert shown.endswith("…") or shown.endswith(")") or shown[-1].isdigit(), shown
        assert "Name)" not in hosts


@given(st.text(alphabet=st.sampled_from("ab -.:()"), max_size=120), st.integers(2, 100))
def test_fit_words_never_exceeds_the_width_nor_cuts_inside_a_word(text: str, width: int) -> None:
    fitted = fit_words(Text(text), width).plain
    assert len(fitted) <= width
    if fitted != text:
        assert fitted.endswith("…")
        kept = fitted[:-1]
        # What is kept is the text's start, ending where a word ended (or one long word).
        assert text.startswith(kept)
        assert " " not in kept.strip() or text[len(kept) : len(kept) + 1] in (" ", "")


@given(st.integers(56, 240))
def test_the_errors_table_fits_its_width_with_status_words_and_age_whole(width: int) -> None:
    """From 56 cells (the table inside a 60-column terminal) up."""
    columns = layout(width)
    used = sum(w + 2 * PADDING for _, w in columns)
    assert used <= width
    shown = {c.key: w for c, w in columns}
    assert shown["status"] >= max(len(label) for label in STATE_LABELS.values())
    assert shown["age"] == 5 and shown["message"] >= 8


@pytest.mark.parametrize(("size", "compact"), [((80, 24), True), ((160, 48), False)])
async def test_footer_keys_have_the_footers_compactness_and_show_once_after_a_burst_of_changes(
    tmp_path: Path, size: tuple[int, int], compact: bool
) -> None:
    async with filled_app(tmp_path) as app, app.run_test(size=size) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(DecisionFooter)
        shown = footer_keys(app)
        # A burst of binding changes that alter the key set (the sort key comes and goes),
        # as a loading screen makes: the footer ends with the screen's keys, each once.
        for _ in range(5):
            footer.narrow = not footer.narrow
            app.screen.refresh_bindings()
            footer.narrow = not footer.narrow
            app.screen.refresh_bindings()
        await settle(pilot)
        keys = list(app.screen.query(FooterKey))
        assert footer_keys(app) == shown
        assert len(keys) == len({(k.key, k.action) for k in keys})
        assert footer.compact is compact
        # The command palette's key is compact at every width, as in Textual's own footer.
        decisions = [k for k in keys if not k.has_class("-command-palette")]
        assert all(k.compact is compact and k.has_class("-compact") is compact for k in decisions)
