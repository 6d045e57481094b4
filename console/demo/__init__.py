"""``autofix demo``: the whole loop on one machine, with no config and no account.

A real Node.js service with real bugs (``service/``) runs from a git workspace, a traffic
generator makes some requests fail, the real agent tails the service's logs, and the
console shows the errors as they settle.
"""
