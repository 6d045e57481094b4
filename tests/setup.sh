#!/usr/bin/env bash
# Installs every real component the test suite drives, on a fresh Debian machine:
# OpenSSH server, logrotate, bubblewrap, socat, journald tools, PostgreSQL and Chromium (apt), the pinned logging libraries and
# Claude Code CLI (npm), and the project with its console, dev, otlp and team extras (pip, into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
# --runtime: only what `autofix demo` needs: git, node, bubblewrap (Claude Code's Bash sandbox
# and the caged test run of every fix), the project with its console extra, and the Claude
# Code CLI at the version tests/package.json pins, in .venv/claude (the demo runs it against
# its scripted model when no logged-in `claude` is found).
runtime_only=false
[ "${1:-}" = "--runtime" ] && runtime_only=true

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
if ! $runtime_only; then
  [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
  [ -x /usr/sbin/logrotate ] || need_apt+=(logrotate)
  command -v socat >/dev/null || need_apt+=(socat)
  # journald sources: journalctl reads journal files that systemd-journal-remote writes.
  command -v journalctl >/dev/null || need_apt+=(systemd)
  [ -x /lib/systemd/systemd-journal-remote ] || need_apt+=(systemd-journal-remote)
  # The team store's tests run a throwaway PostgreSQL cluster (initdb, pg_ctl).
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
  # `autofix web` is checked in a real headless browser.
  command -v chromium >/dev/null || need_apt+=(chromium)
fi
command -v git >/dev/null || need_apt+=(git)
command -v node >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
# The demo's Claude Code CLI: the pinned version, in an npm prefix of the virtualenv's own.
claude_pin=$(node -p "require('./tests/package.json').dependencies['@anthropic-ai/claude-code']")
demo_cli_version() {
  node -p "require('./.venv/claude/node_modules/@anthropic-ai/claude-code/package.json').version" \
    2>/dev/null || true
}
if $runtime_only; then
  .venv/bin/pip install -q -e '.[console]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import agent, console, textual, asyncssh, aiosqlite, telegram, httpx"
  if [ "$(demo_cli_version)" != "$claude_pin" ]; then
    rm -rf .venv/claude
    npm install --prefix .venv/claude --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$claude_pin"
  fi
  .venv/claude/node_modules/.bin/claude --version >/dev/null
  exit 0
fi
.venv/bin/pip install -q -e '.[console,dev,otlp,team]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import agent, console, textual, asyncssh, aiosqlite, telegram, httpx"
.venv/bin/python -c "import psycopg, psycopg_pool"
.venv/bin/python -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.proto"

if [ ! -x tests/node_modules/.bin/claude ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  npm ci --prefix tests --no-audit --no-fund --loglevel=error
fi
tests/node_modules/.bin/claude --version >/dev/null
# The demo runs the same pinned CLI; share the tests' install rather than download it twice.
if [ "$(demo_cli_version)" != "$claude_pin" ]; then
  rm -rf .venv/claude
  mkdir -p .venv/claude
  ln -s ../../tests/node_modules .venv/claude/node_modules
fi
.venv/claude/node_modules/.bin/claude --version >/dev/null
