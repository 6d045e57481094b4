"""A loopback stand-in for the GitHub REST endpoints the console calls.

It is a real HTTP server on 127.0.0.1 (random port) speaking GitHub's JSON shapes and
status codes for: reading a repository (with the token's ``permissions``), listing pull
requests by head, creating a pull request, reading one (with an ETag, answering 304 to a
matching If-None-Match), labelling an issue/PR, and (auto-merge's section) a commit's
check runs and combined status and the merge endpoint, which squash-merges into the bare
repository when it has one. A test also merges or closes a PR as a person on GitHub would
(:meth:`GitHubStandIn.merge`, a real merge commit on the bare remote's base, and
:meth:`GitHubStandIn.close`). It checks the bearer token, keeps pull requests in memory
(so a lookup after a create finds it), records every request, and can be told to fail the
next matching request with a given status or to rate limit it once. When given the bare
repository that plays the git remote, it refuses a PR whose head branch was never pushed,
as GitHub does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.loopback import LoopbackServer


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Failure:
    method: str | None
    path_contains: str | None
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


class GitHubStandIn:
    """In-memory GitHub for one test; use as a context manager."""

    def __init__(
        self,
        *,
        token: str = "ghp_test-token",
        repos: dict[str, Path | None] | None = None,
        read_only: tuple[str, ...] = (),
    ) -> None:
        self.token = token
        # repositories whose ``GET /repos/{o}/{r}`` says ``permissions.push`` is false
        self.read_only = read_only
        # owner/name -> bare repository holding its branches (None: accept any head)
        self.repos: dict[str, Path | None] = dict(repos or {"octo/service": None})
        self.requests: list[RecordedRequest] = []
        self.pulls: dict[str, list[dict[str, Any]]] = {name: [] for name in self.repos}
        self._failures: list[_Failure] = []
        self._stale_lists = 0
        self._init_auto_merge()
        self._lock = threading.Lock()
        self._http = LoopbackServer(self._handler_class())

    @property
    def url(self) -> str:
        return self._http.url

    def __enter__(self) -> GitHubStandIn:
        self._http.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.stop()

    # -- scripting ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        message: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Answer the next matching request with ``status`` instead of handling it."""
        defaults = {
            401: "Bad credentials",
            403: "Resource not accessible by personal access token",
            404: "Not Found",
            422: "Validation Failed",
            500: "Server Error",
        }
        payload: dict[str, Any] = {"message": message or defaults.get(status, "Error")}
        if errors is not None:
            payload["errors"] = errors
        payload["documentation_url"] = "https://docs.github.com/rest"
        with self._lock:
            self._failures.append(_Failure(method, path_contains, status, payload))

    def rate_limit_next(
        self,
        *,
        status: int = 403,
        retry_after: float | None = None,
        reset_in: float | None = None,
        method: str | None = None,
    ) -> None:
        """Rate limit the next matching request once, with GitHub's headers."""
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-used": "5000"}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if reset_in is not None:
            headers["x-ratelimit-remaining"] = "0"
            headers["x-ratelimit-reset"] = str(int(time.time() + reset_in))
        payload = {"message": "API rate limit exceeded for user ID 1."}
        with self._lock:
            self._failures.append(_Failure(method, None, status, payload, headers))

    def stale_list_next(self) -> None:
        """The next pull request listing misses everything, as GitHub's lagging search
        index sometimes does right after a PR was created elsewhere."""
        with self._lock:
            self._stale_lists += 1

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        with self._lock:
            return next(p for p in self.pulls[repo] if p["number"] == number)

    def merge(self, repo: str, number: int, *, by: str = "octocat") -> str:
        """Merge a PR as a person on GitHub would: with the bare remote known, a real
        merge commit of its head into its base (``--no-ff``), pushed there. Returns the
        merge commit's sha (a made-up one without a remote)."""
        pr = self.pull(repo, number)
        bare = self.repos[repo]
        sha = hashlib.sha1(f"{repo}#{number}".encode()).hexdigest()
        if bare is not None:
            sha = _merge_in(bare, pr["head"]["ref"], pr["base"]["ref"], f"Merge #{number}")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock:
            pr.update(
                state="closed",
                merged=True,
                merged_at=stamp,
                closed_at=stamp,
                merge_commit_sha=sha,
                merged_by={"login": by},
            )
        return sha

    def close(self, repo: str, number: int) -> None:
        """Close a PR without merging it."""
        pr = self.pull(repo, number)
        with self._lock:
            pr.update(state="closed", closed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def reads(self, number: int) -> list[RecordedRequest]:
        """The GET requests for one pull request, in order."""
        return [
            r for r in self.requests if r.method == "GET" and r.path.endswith(f"/pulls/{number}")
        ]

    def posts(self, path_suffix: str = "/pulls") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(path_suffix)]

    # -- request handling --------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stand_in._handle(self, "GET")

            def do_POST(self) -> None:
                stand_in._handle(self, "POST")

            def do_PUT(self) -> None:
                stand_in._handle(self, "PUT")

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, split.path, query, headers, body))
            failure = next((f for f in self._failures if f.matches(method, split.path)), None)
            if failure is not None:
                self._failures.remove(failure)
        if headers.get("authorization") != f"Bearer {self.token}":
            return self._send(handler, 401, {"message": "Bad credentials"})
        if failure is not None:
            return self._send(handler, failure.status, failure.payload, failure.headers)
        status, payload = self._route(method, split.path, query, body)
        if method == "GET" and status == 200 and isinstance(payload, dict):
            # GitHub's ETag is a digest of the answer: the same PR state, the same tag.
            etag = (
                '"'
                + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
                + '"'
            )
            if headers.get("if-none-match") == etag:
                return self._send(handler, 304, None, {"etag": etag})
            return self._send(handler, status, payload, {"etag": etag})
        self._send(handler, status, payload)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "repos":
            return 404, {"message": "Not Found"}
        repo = f"{parts[1]}/{parts[2]}"
        if repo not in self.repos:
            return 404, {"message": "Not Found"}
        rest = parts[3:]
        if not rest and method == "GET":
            return 200, {
                "full_name": repo,
                "default_branch": "main",
                "permissions": {"admin": False, "push": repo not in self.read_only, "pull": True},
            }
        if rest == ["pulls"] and method == "GET":
            return 200, self._list_pulls(repo, query)
        if rest == ["pulls"] and method == "POST":
            return self._create_pull(repo, body)
        if len(rest) == 2 and rest[0] == "pulls" and method == "GET":
            with self._lock:
                found = [dict(p) for p in self.pulls[repo] if str(p["number"]) == rest[1]]
            return (200, found[0]) if found else (404, {"message": "Not Found"})
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "labels" and method == "POST":
            return self._add_labels(repo, rest[1], body)
        routed = self._route_auto_merge(method, repo, rest, body)
        if routed is not None:
            return routed
        return 404, {"message": "Not Found"}

    def _list_pulls(self, repo: str, query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        head = query.get("head")
        with self._lock:
            if self._stale_lists:
                self._stale_lists -= 1
                return []
            pulls = list(self.pulls[repo])
        return [
            pr
            for pr in pulls
            if (state == "all" or pr["state"] == state)
            and (head is None or pr["head"]["label"] == head)
        ]

    def _create_pull(self, repo: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"message": "Problems parsing JSON"}
        missing = [k for k in ("title", "head", "base") if not body.get(k)]
        if missing:
            return 422, {
                "message": "Validation Failed",
                "errors": [
                    {"resource": "PullRequest", "field": k, "code": "missing_field"}
                    for k in missing
                ],
            }
        owner = repo.split("/")[0]
        head, base = str(body["head"]), str(body["base"])
        bare = self.repos[repo]
        if bare is not None and not _branch_exists(bare, head):
            return 422, {
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            }
        with self._lock:
            for pr in self.pulls[repo]:
                if (
                    pr["head"]["ref"] == head
                    and pr["base"]["ref"] == base
                    and pr["state"] == "open"
                ):
                    return 422, {
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {owner}:{head}.",
                            }
                        ],
                    }
            number = 1 + sum(len(p) for p in self.pulls.values())
            pr = {
                "number": number,
                "state": "open",
                "title": body["title"],
                "body": body.get("body"),
                "draft": bool(body.get("draft", False)),
                "html_url": f"https://github.example/{repo}/pull/{number}",
                "url": f"{self.url}/repos/{repo}/pulls/{number}",
                "head": {"ref": head, "label": f"{owner}:{head}"},
                "base": {"ref": base, "label": f"{owner}:{base}"},
                "labels": [],
                "merged": False,
                "merged_at": None,
                "closed_at": None,
                "merge_commit_sha": None,
                "merged_by": None,
            }
            self.pulls[repo].append(pr)
        return 201, pr

    def _add_labels(self, repo: str, number: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            pr = next((p for p in self.pulls[repo] if str(p["number"]) == number), None)
            if pr is None:
                return 404, {"message": "Not Found"}
            labels = body.get("labels") if isinstance(body, dict) else None
            if not isinstance(labels, list):
                return 422, {"message": "Invalid request."}
            for name in labels:
                if name not in [label["name"] for label in pr["labels"]]:
                    pr["labels"].append({"name": name})
            return 200, pr["labels"]

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = b"" if status == 304 else json.dumps(payload).encode()
        handler.send_response(status)
        if status != 304:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    # -- auto-merge: check runs, commit statuses and the merge endpoint ---------------------

    def _init_auto_merge(self) -> None:
        # (repo, sha) -> check runs / statuses (latest per context), as CI would report them
        self.check_runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.statuses: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.merges: list[dict[str, Any]] = []
        # PR numbers GitHub refuses to merge (405), with the message it gives
        self.unmergeable: dict[int, str] = {}

    def head_sha(self, repo: str, ref: str) -> str:
        """The commit ``ref`` (a branch or a sha) names: from the bare repository when there
        is one, else a stable made-up sha for the branch."""
        if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
            return ref
        bare = self.repos.get(repo)
        if bare is not None:
            done = subprocess.run(
                ["git", "--git-dir", str(bare), "rev-parse", "-q", "--verify", f"{ref}^{{commit}}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                return done.stdout.strip()
        return hashlib.sha1(f"{repo}:{ref}".encode()).hexdigest()

    def report_check(
        self,
        ref: str,
        name: str,
        *,
        repo: str = "octo/service",
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> None:
        """CI reports a check run on ``ref`` (a rerun under the same name replaces it)."""
        sha = self.head_sha(repo, ref)
        with self._lock:
            runs = [r for r in self.check_runs.get((repo, sha), []) if r["name"] != name]
            runs.append(
                {
                    "id": len(runs) + 1,
                    "name": name,
                    "head_sha": sha,
                    "status": status,
                    "conclusion": conclusion if status == "completed" else None,
                }
            )
            self.check_runs[(repo, sha)] = runs

    def report_status(
        self, ref: str, context: str, state: str, *, repo: str = "octo/service"
    ) -> None:
        """CI sets a commit status (``success``, ``pending``, ``failure`` or ``error``)."""
        sha = self.head_sha(repo, ref)
        with self._lock:
            self.statuses.setdefault((repo, sha), {})[context] = {
                "context": context,
                "state": state,
            }

    def _route_auto_merge(
        self, method: str, repo: str, rest: list[str], body: Any
    ) -> tuple[int, Any] | None:
        if len(rest) == 3 and rest[0] == "commits" and method == "GET":
            sha = self.head_sha(repo, unquote(rest[1]))
            if rest[2] == "check-runs":
                with self._lock:
                    runs = list(self.check_runs.get((repo, sha), []))
                return 200, {"total_count": len(runs), "check_runs": runs}
            if rest[2] == "status":
                return 200, self._combined_status(repo, sha)
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "merge" and method == "PUT":
            return self._merge_pull(repo, rest[1], body)
        return None

    def _combined_status(self, repo: str, sha: str) -> dict[str, Any]:
        with self._lock:
            statuses = list(self.statuses.get((repo, sha), {}).values())
        states = {s["state"] for s in statuses}
        if states & {"failure", "error"}:
            state = "failure"
        elif "pending" in states or not statuses:
            state = "pending"  # GitHub's answer for a commit without any status, too
        else:
            state = "success"
        return {"state": state, "sha": sha, "total_count": len(statuses), "statuses": statuses}

    def _merge_pull(self, repo: str, number: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            pr = next((p for p in self.pulls[repo] if str(p["number"]) == number), None)
        if pr is None:
            return 404, {"message": "Not Found"}
        if not isinstance(body, dict):
            body = {}
        if pr["state"] != "open" or pr["number"] in self.unmergeable:
            return 405, {
                "message": self.unmergeable.get(pr["number"], "Pull Request is not mergeable")
            }
        if body.get("merge_method", "merge") != "squash":
            return 405, {"message": "Only squash merges are allowed on this repository."}
        head = self.head_sha(repo, pr["head"]["ref"])
        if body.get("sha") and body["sha"] != head:
            return 409, {"message": "Head branch was modified. Review and try the merge again."}
        title = str(body.get("commit_title") or f"{pr['title']} (#{number})")
        merged = self._squash(
            repo, pr["base"]["ref"], head, title, str(body.get("commit_message") or "")
        )
        if merged is None:
            return 405, {"message": "Pull Request is not mergeable"}
        with self._lock:
            pr.update(
                state="closed",
                merged=True,
                merged_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                merge_commit_sha=merged,
            )
            self.merges.append({"number": pr["number"], "sha": merged, "method": "squash"})
        return 200, {"sha": merged, "merged": True, "message": "Pull Request successfully merged"}

    def _squash(self, repo: str, base: str, head: str, title: str, message: str) -> str | None:
        """One commit on ``base`` with ``head``'s tree, as GitHub's squash merge makes it;
        None when ``head`` is not built on the base's tip (the stand-in does not resolve
        conflicts)."""
        bare = self.repos.get(repo)
        if bare is None:
            return hashlib.sha1(f"squash:{repo}:{head}".encode()).hexdigest()
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "GitHub",
            "GIT_AUTHOR_EMAIL": "noreply@github.example",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.example",
        }

        def git(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["git", "--git-dir", str(bare), *args],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )

        tip = git("rev-parse", "-q", "--verify", f"refs/heads/{base}").stdout.strip()
        if not tip or git("merge-base", "--is-ancestor", tip, head).returncode != 0:
            return None
        text = f"{title}\n\n{message}".strip() + "\n"
        made = git("commit-tree", f"{head}^{{tree}}", "-p", tip, "-m", text).stdout.strip()
        if not made or git("update-ref", f"refs/heads/{base}", made, tip).returncode != 0:
            return None
        return made


def _branch_exists(bare: Path, branch: str) -> bool:
    done = subprocess.run(
        ["git", "--git-dir", str(bare), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _merge_in(bare: Path, head: str, base: str, message: str) -> str:
    """Merge ``head`` into ``base`` on the bare repository (a merge commit), as the merge
    button does; returns the merge commit's sha."""
    with tempfile.TemporaryDirectory(prefix="gh-merge-") as tmp:
        ident = ["-c", "user.name=GitHub", "-c", "user.email=noreply@github.example"]

        def run(*args: str) -> str:
            done = subprocess.run(
                ["git", *ident, *args], cwd=tmp, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"git {' '.join(args)}: {done.stderr}")
            return done.stdout.strip()

        run("clone", "-q", "-b", base, str(bare), ".")
        run("fetch", "-q", "origin", f"refs/heads/{head}:refs/remotes/origin/{head}")
        run("merge", "-q", "--no-ff", "-m", message, f"origin/{head}")
        run("push", "-q", "origin", f"HEAD:refs/heads/{base}")
        return run("rev-parse", "HEAD")
