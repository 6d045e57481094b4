"""The key bar: Textual's footer, made to fit an 80-column terminal.

At 80 columns Textual's footer cut off its right end, and with it ``?`` and ``q``, the two
keys a new user looks for first. Below the wide breakpoint this footer is compact, puts
``?`` and ``q`` first (no width cuts them off), uses shorter words and leaves out the keys
that help lists and that people find without a hint (enter for the detail, ``S`` for the
sort, ``ctrl+p`` for the palette), so at 80 columns every other key fits as well. The keys
left out still work.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Actions whose keys the footer leaves out on a narrow terminal (help lists them all).
FOLDED_WHEN_NARROW = frozenset({"detail", "cycle_sort"})
# Shorter words on a narrow terminal, so that every key left fits 80 columns.
NARROW_NAMES = {"open_pr": "PR"}
# On a narrow terminal these come first, so no width ever cuts them off (as htop does).
FIRST_WHEN_NARROW = ("help", "quit")


class ConsoleFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self.narrow = False

    def fit(self, narrow: bool) -> None:
        """Show the footer for a narrow (below the wide breakpoint) or a wide terminal."""
        if narrow == self.narrow:
            return
        self.narrow = narrow
        self.compact = narrow
        self.show_command_palette = not narrow
        self.refresh(recompose=True)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        shown: dict[str, FooterKey] = {}
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in shown:
                continue
            if self.narrow and binding.action in FOLDED_WHEN_NARROW:
                continue
            description = binding.description
            if self.narrow:
                description = NARROW_NAMES.get(binding.action, description)
            shown[binding.action] = FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if self.narrow:
            first = {a: shown.pop(a) for a in FIRST_WHEN_NARROW if a in shown}
            shown = first | shown
        self.styles.grid_size_columns = len(shown)
        yield from shown.values()
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                _, binding, enabled, tooltip = palette
                yield FooterKey(
                    binding.key,
                    self.app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    classes="-command-palette",
                    disabled=not enabled,
                    tooltip=binding.tooltip or binding.description,
                )
