"""The key footer: greying and ungreying keys in place, and fitting an 80-column terminal.

Textual's footer builds all its keys again whenever the screen's bindings are refreshed,
which mounts and styles a dozen widgets and lays the whole screen out again: tens of
milliseconds, and the main screen refreshes its bindings each time the cursor moves to an
error that allows other decisions. When the same keys are shown and only which of them are
live changed, this footer restyles the keys it has; anything else rebuilds it as before.

At 80 columns Textual's footer cut off its right end, and with it ``?`` and ``q``, the two
keys a new user looks for first. Below the wide breakpoint this footer is compact, puts
``?`` and ``q`` first (no width cuts them off), uses shorter words and leaves out the keys
that help lists and that are not needed to decide (enter for the detail, ``S`` for the
sort, ``o`` to open a PR, ``ctrl+p`` for the palette) or only needed once a fix came back
(``u`` to revert it, ``m`` to mute). The keys left out still work.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

KeyShown = tuple[str, str, str]  # key, action, description

# Actions whose keys the footer leaves out on a narrow terminal (help lists them all).
FOLDED_WHEN_NARROW = frozenset({"detail", "cycle_sort", "open_pr", "revert", "mute"})
# Shorter words on a narrow terminal, so that the keys left fit 80 columns.
NARROW_NAMES = {"auto_merge": "Merge", "filter": "Find"}
# On a narrow terminal these come first, so no width ever cuts them off (as htop does).
FIRST_WHEN_NARROW = ("help", "quit")


class DecisionFooter(Footer):
    """A Footer whose keys are restyled, not rebuilt, when only their enabled state
    changed, and which :meth:`fit` makes narrow or wide."""

    def __init__(self) -> None:
        super().__init__()
        self.narrow = False
        self._rebuild_queued = False

    def fit(self, narrow: bool) -> None:
        """Show the footer for a narrow (below the wide breakpoint) or a wide terminal."""
        if narrow == self.narrow:
            return
        self.narrow = narrow
        self.compact = narrow
        self.show_command_palette = not narrow
        self.refresh(recompose=True)

    def _shown(self, screen: Screen) -> dict[str, tuple[Binding, bool, str | None, str]]:
        """The keys to show, in order, by action: binding, enabled, tooltip, description."""
        shown: dict[str, tuple[Binding, bool, str | None, str]] = {}
        for _node, binding, enabled, tooltip in screen.active_bindings.values():
            if not binding.show or binding.action in shown:
                continue
            if self.narrow and binding.action in FOLDED_WHEN_NARROW:
                continue
            description = binding.description
            if self.narrow:
                description = NARROW_NAMES.get(binding.action, description)
            shown[binding.action] = (binding, enabled, tooltip, description)
        if self.narrow:
            first = {a: shown.pop(a) for a in FIRST_WHEN_NARROW if a in shown}
            shown = first | shown
        return shown

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        shown = self._shown(self.screen)
        self.styles.grid_size_columns = len(shown)
        for binding, enabled, tooltip, description in shown.values():
            key = FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                description,
                binding.action,
                classes="-compact" if self.compact else "",
                disabled=not enabled,
                tooltip=tooltip or "",
            )
            # Born in the footer's compactness: a key starts compact and its watcher would
            # restyle it once on mount and again when bound to a wide footer, some 3 ms each.
            key.set_reactive(FooterKey.compact, self.compact)
            yield key.data_bind(compact=Footer.compact)
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

    def bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen and self._restyle(screen):
            return
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        # Textual's footer queues a rebuild for every change; the bindings of a screen that
        # is loading change many times before the first one runs, and each rebuild mounts
        # and styles every key again. One queued rebuild reads the bindings as they are then.
        if not self._rebuild_queued:
            self._rebuild_queued = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_queued = False
        await self.recompose()

    def _restyle(self, screen: Screen) -> bool:
        """Set each key's greyed state from the screen's bindings; False when the keys
        themselves differ from the ones shown (then the footer must be rebuilt)."""
        shown = self._shown(screen)
        wanted: set[KeyShown] = {
            (binding.key, action, description)
            for action, (binding, _, _, description) in shown.items()
        }
        keys = [k for k in self.query(FooterKey) if not k.has_class("-command-palette")]
        if not keys or {(k.key, k.action, k.description) for k in keys} != wanted:
            return False
        if len(keys) != len(wanted):
            return False
        for key in keys:
            disabled = not shown[key.action][1]
            if key._disabled != disabled:
                key._disabled = disabled
                key.set_class(disabled, "-disabled")
        return True
