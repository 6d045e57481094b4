"""The fix pipeline: a worktree, Claude Code in it, the caged tests, the diff, the PR.

The sandbox pieces (what the child processes may see and do) live in
:mod:`console.fix.sandbox`.
"""
