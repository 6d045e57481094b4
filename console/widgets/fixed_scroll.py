"""Scrolling panes whose size the stylesheet fixes: new content is a content swap.

Textual's ``virtual_size`` (how much there is to scroll) asks for a layout of the whole
screen whenever it changes, as if the widget's own size depended on it. For a pane sized by
styles.tcss (``1fr``, a fixed height) it does not: what changes is the scrollable area and
the scrollbars. Under a flood of engine events each layout cost a key press 20-30 ms of CPU,
and a press that moved the selection to another attempt laid the screen out two or three
times (the Claude panel's history cleared and written, then the scrollbars following), so
the highlight of the next press waited behind them.

A widget that mixes :class:`InPlaceScroll` in keeps its scrollable area in step without
that layout: a change of ``virtual_size`` updates its scrollbars (a scrollbar that appears
or goes still lays the screen out, as the content width really changes) and repaints it.
Only for widgets whose size does not follow their content (never ``height: auto``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.geometry import Size
from textual.reactive import Reactive

if TYPE_CHECKING:
    from textual.widget import Widget

    _Base = Widget
else:
    # A plain mixin: Textual inherits default CSS along each class's first widget base,
    # which must stay the widget the pane is (RichLog, ScrollView).
    _Base = object


class InPlaceScroll(_Base):
    """A scrolling widget whose content changes its scrollbars, not the screen's layout;
    mixed in first (``class Pane(InPlaceScroll, ScrollView)``)."""

    # Widget.virtual_size without the layout; its watcher does what the layout would.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        # Textual's own step after a layout: the scrollbars' presence, their thumbs and a
        # scroll offset the new size no longer allows.
        self._scroll_update(size)
