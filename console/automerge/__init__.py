"""Auto-merge: a service's opt-in policy, the gates a fix must pass, and the soak before
the merge (see the README's "Auto-merge" section)."""
