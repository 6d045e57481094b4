"""The limits put on what the fix pipeline runs: Claude Code's permission policy and the
record of what it refused, the bubblewrap cage of the test run, and the allow-listed
environment of every child process. Kept together so the security boundary is read in
one place.
"""
