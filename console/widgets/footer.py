"""The key footer, greying and ungreying keys in place.

Textual's footer builds all its keys again whenever the screen's bindings are refreshed,
which mounts and styles a dozen widgets and lays the whole screen out again: tens of
milliseconds, and the main screen refreshes its bindings each time the cursor moves to an
error that allows other decisions. When the same keys are shown and only which of them are
live changed, this footer restyles the keys it has; anything else rebuilds it as before.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

KeyShown = tuple[str, str, str]  # key, action, description


class DecisionFooter(Footer):
    """A Footer whose keys are restyled, not rebuilt, when only their enabled state changed."""

    def bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen and self._restyle(screen):
            return
        super().bindings_changed(screen)

    def _restyle(self, screen: Screen) -> bool:
        """Set each key's greyed state from the screen's bindings; False when the keys
        themselves differ from the ones shown (then the footer must be rebuilt)."""
        enabled_by_action: dict[str, bool] = {}
        wanted: set[KeyShown] = set()
        for _node, binding, enabled, _tooltip in screen.active_bindings.values():
            if binding.show and binding.action not in enabled_by_action:
                enabled_by_action[binding.action] = enabled
                wanted.add((binding.key, binding.action, binding.description))
        keys = [k for k in self.query(FooterKey) if not k.has_class("-command-palette")]
        if not keys or {(k.key, k.action, k.description) for k in keys} != wanted:
            return False
        if len(keys) != len(wanted):
            return False
        for key in keys:
            disabled = not enabled_by_action[key.action]
            if key._disabled != disabled:
                key._disabled = disabled
                key.set_class(disabled, "-disabled")
        return True
