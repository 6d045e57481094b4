"""An error's life after its fix's pull request: merged or closed (``poll``), resolved,
regressed or escalating (``rules`` decides, ``watch`` applies), and reverting a fix that
did not hold (``revert``)."""
