"""Re-run the corpus programs with the pinned libraries and capture their logs as users get them.

Each program in ``gen/`` is a small service built on one real library; it serves a fixed plan
of requests (``gen/lib/plan.js``) that fail in known ways and writes a manifest of the groups
the agent must report. Every log is captured twice: as deployed, and as a redeploy whose
code has extra lines above every throw (so line numbers move but fingerprints must not).

The programs run under bubblewrap with the app at ``/srv/app``, the hostname ``shop-1`` and
``TZ=UTC``, so the committed logs name no path or host of the machine that made them. The
carriers (Docker json-file, CRI, PM2, journald) wrap a program's output exactly as those
runtimes write it; see ``carriers.py``.

Usage: ``python3 tests/corpus/regenerate.py [--out DIR] [NAME ...]`` (default: all logs,
written to ``tests/corpus/logs``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.corpus` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.corpus import carriers

CORPUS = Path(__file__).resolve().parent
GEN = CORPUS / "gen"
LOGS = CORPUS / "logs"
NODE_MODULES = CORPUS.parent / "node_modules"
APP = carriers.APP_DIR
HOST = "shop-1"
VARIANTS = ("deploy", "redeploy")
_TIMEOUT = 180
# A build step (tsc, next build) may take minutes on a busy machine.
_BUILD_TIMEOUT = 900

# What a redeploy adds above every `// @corpus-shift` marker: real code, so every frame
# below it moves down by this many lines.
_SHIFT = {
    ".js": (
        "// Audit trail of recent calls, added in this release.\n"
        "const auditTrail = [];\n"
        "function audit(event) {\n"
        "  auditTrail.push({ event, at: Date.now() });\n"
        "  if (auditTrail.length > 100) auditTrail.shift();\n"
        "}\n"
        "audit('loaded');\n"
    ),
    ".ts": (
        "// Audit trail of recent calls, added in this release.\n"
        "const auditTrail: { event: string; at: number }[] = [];\n"
        "function audit(event: string): void {\n"
        "  auditTrail.push({ event, at: Date.now() });\n"
        "  if (auditTrail.length > 100) auditTrail.shift();\n"
        "}\n"
        "audit('loaded');\n"
    ),
}
_MARKER = "// @corpus-shift\n"


@dataclass(frozen=True)
class Spec:
    """One corpus log: which program makes it, how often each fault occurs, what carries it.

    ``counts`` maps fault keys (``gen/lib/traffic.js``) to occurrences, for the deploy and
    the redeploy variant. ``carrier`` names an encoder in ``carriers.CARRIERS`` (``None``:
    the program's own output, stdout and stderr in one file as ``node app.js >> log 2>&1``
    writes it; ``"pm2"``: pm2 runs the program and its error log is kept). ``build`` runs
    in the app directory before the program (tsc). ``crash_per_fault``: the program dies
    of one fault per run, so it is run once per occurrence (``CORPUS_RUN`` = its index),
    as a supervisor restarts it.
    """

    name: str
    program: str
    counts: dict[str, int]
    redeploy_counts: dict[str, int]
    seed: int
    carrier: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    node_args: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    crash_per_fault: bool = False
    description: str = ""


SPECS: tuple[Spec, ...] = (
    Spec(
        "express5-default-handler",
        "express5.js",
        {"total": 12, "charge": 5, "reserve": 3, "cart": 21},
        {"total": 3, "charge": 4, "reserve": 6, "cart": 3},
        seed=11,
        description="Express 5's default error handler: err.stack on stderr",
    ),
    Spec(
        "nest-default-logger-ansi",
        "nest.js",
        {"total": 8, "charge": 17, "profile": 4},
        {"total": 3, "charge": 5, "profile": 3},
        seed=21,
        description="NestJS default Logger, ExceptionsHandler, with its ANSI colours",
    ),
    Spec(
        "nest-default-logger-plain",
        "nest.js",
        {"total": 5, "reserve": 9, "cart": 3, "profile": 14},
        {"total": 4, "reserve": 3, "cart": 3, "profile": 5},
        seed=22,
        env={"NO_COLOR": "1"},
        description="NestJS default Logger, ExceptionsHandler, NO_COLOR=1",
    ),
    Spec(
        "koa-onerror",
        "koa.js",
        {"total": 6, "charge": 3, "cart": 11},
        {"total": 3, "charge": 4, "cart": 5},
        seed=31,
        description="Koa's default app.onerror: the stack indented by two spaces",
    ),
    Spec(
        "hapi-debug",
        "hapi.js",
        # hapi logs only errors Boom counts as developer errors (TypeError, RangeError,
        # SyntaxError, ...) by default; a PaymentError or a plain Error answers 500 silently.
        {"total": 4, "reserve": 13, "cart": 3},
        {"total": 3, "reserve": 4, "cart": 3},
        seed=41,
        description="hapi's default `Debug: internal, implementation, error` block",
    ),
    Spec(
        "fastify-pino",
        "fastify.js",
        {"total": 9, "charge": 4, "reserve": 3},
        {"total": 3, "charge": 3, "reserve": 5},
        seed=51,
        description="Fastify's built-in pino logger: JSON lines with req and err",
    ),
    *(
        Spec(
            f"{logger}",
            "express5.js",
            counts,
            redeploy,
            seed=seed,
            env={"CORPUS_LOGGER": logger},
            description=description,
        )
        for logger, counts, redeploy, seed, description in (
            (
                "pino-json",
                {"total": 14, "charge": 3, "reserve": 6, "profile": 4},
                {"total": 3, "charge": 3, "reserve": 3, "profile": 4},
                61,
                "pino's JSON lines, err and req serialized",
            ),
            (
                "bunyan-json",
                {"charge": 7, "cart": 12, "profile": 3},
                {"charge": 3, "cart": 4, "profile": 3},
                62,
                "bunyan's JSON lines, err and req serialized",
            ),
            (
                "winston-json",
                {"total": 4, "reserve": 15, "cart": 6},
                {"total": 3, "reserve": 3, "cart": 4},
                63,
                "winston format.errors({stack: true}) + format.json()",
            ),
            (
                "pino-pretty",
                {"total": 3, "charge": 10, "reserve": 4, "profile": 6},
                {"total": 3, "charge": 3, "reserve": 3, "profile": 3},
                64,
                "pino through the pino-pretty transform: err object indented under the line",
            ),
            (
                "winston-simple",
                {"total": 8, "charge": 4, "cart": 3, "profile": 11},
                {"total": 3, "charge": 4, "cart": 3, "profile": 3},
                65,
                "winston format.errors({stack: true}) + format.simple(): JSON tail",
            ),
            (
                "winston-printf",
                {"charge": 5, "reserve": 3, "profile": 16},
                {"charge": 3, "reserve": 4, "profile": 3},
                66,
                "winston printf `${timestamp} [${label}] ${level}: ${message}` + stack",
            ),
            (
                "log4js",
                {"total": 19, "reserve": 5, "cart": 3, "profile": 7},
                {"total": 4, "reserve": 3, "cart": 3, "profile": 3},
                67,
                "log4js basic layout: `[time] [LEVEL] category - ` + error with stack",
            ),
        )
    ),
    Spec(
        "console-handlers",
        "console-handlers.js",
        {"total": 6, "charge": 9, "reserve": 3, "profile": 4},
        {"total": 3, "charge": 3, "reserve": 3, "profile": 4},
        seed=71,
        description="console.error('uncaughtException:' / 'unhandledRejection:', err)",
    ),
    Spec(
        "node-crash",
        "node-crash.js",
        {"total": 4, "charge": 3, "reserve": 5},
        {"total": 3, "charge": 3, "reserve": 3},
        seed=72,
        crash_per_fault=True,
        description="node's own crash report (uncaught exception, unhandled rejection), restarts",
    ),
    Spec(
        "typescript-dist",
        "ts/dist/server.js",
        {"total": 7, "charge": 3, "profile": 12},
        {"total": 3, "charge": 4, "profile": 3},
        seed=81,
        build=("node_modules/.bin/tsc -p ts",),
        description="TypeScript compiled with tsc, run without source maps",
    ),
    Spec(
        "typescript-source-maps",
        "ts/dist/server.js",
        {"total": 5, "charge": 13, "profile": 3},
        {"total": 3, "charge": 3, "profile": 5},
        seed=82,
        build=("node_modules/.bin/tsc -p ts",),
        node_args=("--enable-source-maps",),
        description="TypeScript compiled with tsc, run with --enable-source-maps",
    ),
    Spec(
        "nextjs",
        "nextjs.js",
        {"total": 6, "charge": 4, "profile": 9},
        {"total": 3, "charge": 5, "profile": 3},
        seed=83,
        env={"NEXT_TELEMETRY_DISABLED": "1"},
        build=("node node_modules/next/dist/bin/next build --webpack nextjs",),
        node_args=("--enable-source-maps",),
        description="Next.js production server (webpack build): ` \u2a2f Error: ...`, digests",
    ),
    Spec(
        "docker-json-fastify",
        "fastify.js",
        {"total": 5, "charge": 12, "profile": 3},
        {"total": 3, "charge": 3, "profile": 4},
        seed=91,
        carrier="docker-json",
        description="Docker json-file driver carrying Fastify's pino JSON lines",
    ),
    Spec(
        "docker-json-nest",
        "nest.js",
        {"total": 4, "reserve": 3, "cart": 9},
        {"total": 3, "reserve": 3, "cart": 3},
        seed=92,
        carrier="docker-json",
        description="Docker json-file driver carrying NestJS's coloured default Logger",
    ),
    Spec(
        "cri-pino",
        "express5.js",
        {"total": 6, "cart": 4, "profile": 10},
        {"total": 3, "cart": 3, "profile": 3},
        seed=93,
        carrier="cri",
        env={"CORPUS_LOGGER": "pino-json", "CORPUS_CART_ITEMS": "6000"},
        description="CRI (containerd) log file of pino JSON; cart errors exceed 16 KiB (P lines)",
    ),
    Spec(
        "pm2-json",
        "express5.js",
        {"total": 8, "charge": 3, "reserve": 14},
        {"total": 3, "charge": 3, "reserve": 3},
        seed=94,
        carrier="pm2",
        description="pm2 --log-type json error log of Express 5's default handler",
    ),
    Spec(
        "journald-short",
        "express5.js",
        {"total": 3, "charge": 7, "cart": 4},
        {"total": 3, "charge": 3, "cart": 3},
        seed=95,
        carrier="journald-short",
        description="journalctl -o short of a unit running Express 5 (default handler)",
    ),
    Spec(
        "journald-short-iso",
        "console-handlers.js",
        {"total": 4, "charge": 3, "profile": 6},
        {"total": 3, "charge": 3, "profile": 3},
        seed=96,
        carrier="journald-short-iso",
        description="journalctl -o short-iso of a unit printing process-handler errors",
    ),
    Spec(
        "journald-json",
        "nest.js",
        {"total": 3, "charge": 5, "reserve": 3},
        {"total": 3, "charge": 3, "reserve": 3},
        seed=97,
        carrier="journald-json",
        description="journalctl -o json of a NestJS unit; coloured lines give byte-array MESSAGEs",
    ),
)


def time_limit(spec: Spec) -> float:
    """The most seconds regenerating both variants of ``spec`` may take: the sum of the
    bounds on its build steps and program runs. A test's own limit sits above it, so a
    stuck step fails with its command named rather than the test with nothing to say."""
    total = 0.0
    for counts in (spec.counts, spec.redeploy_counts):
        runs = sum(counts.values()) if spec.crash_per_fault else 1
        total += len(spec.build) * _BUILD_TIMEOUT + runs * _TIMEOUT
    return total


def spec_named(name: str) -> Spec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def sandbox(app_dir: Path, env: dict[str, str]) -> list[str]:
    """bubblewrap arguments that show ``app_dir`` at /srv/app with the pinned node_modules."""
    args = [
        "bwrap",
        "--dev-bind",
        "/",
        "/",
        "--tmpfs",
        "/srv",
        "--bind",
        str(app_dir),
        APP,
        "--ro-bind",
        str(NODE_MODULES),
        f"{APP}/node_modules",
        "--unshare-uts",
        "--hostname",
        HOST,
        "--chdir",
        APP,
        "--die-with-parent",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def prepare_app(spec: Spec, variant: str, into: Path) -> Path:
    """A copy of gen/ for ``variant``; the redeploy gets the shift at every marker."""
    app = into / "app"
    shutil.copytree(GEN, app, ignore=shutil.ignore_patterns("node_modules", "dist", ".next"))
    (app / "node_modules").mkdir()
    if variant == "redeploy":
        for path in sorted(app.rglob("*")):
            if path.suffix in _SHIFT and path.is_file():
                text = path.read_text()
                if _MARKER in text:
                    path.write_text(text.replace(_MARKER, _MARKER + _SHIFT[path.suffix]))
    return app


def program_env(spec: Spec, variant: str) -> dict[str, str]:
    counts = spec.counts if variant == "deploy" else spec.redeploy_counts
    seed = spec.seed if variant == "deploy" else spec.seed + 1000
    return {
        "CORPUS_PLAN": json.dumps({"seed": seed, "counts": counts}),
        "CORPUS_MANIFEST": f"{APP}/manifest.json",
        "TZ": "UTC",
        "NODE_OPTIONS": "",
        "NODE_PATH": "",
        **spec.env,
    }


@dataclass
class Capture:
    """What one run of a program wrote: the merged bytes and the timed lines per stream."""

    merged: bytes
    lines: list[carriers.Line]
    manifest: dict[str, object]


def run_program(spec: Spec, variant: str, work: Path) -> Capture:
    app = prepare_app(spec, variant, work)
    env = program_env(spec, variant)
    for step in spec.build:
        subprocess.run([*sandbox(app, env), "sh", "-c", step], check=True, timeout=_BUILD_TIMEOUT)
    counts = spec.counts if variant == "deploy" else spec.redeploy_counts
    runs = sum(counts.values()) if spec.crash_per_fault else 1
    merged = bytearray()
    lines: list[carriers.Line] = []
    if spec.carrier == "pm2":
        merged += carriers.pm2_run(sandbox(app, env), spec.program, app, _TIMEOUT)
        runs = 0
    for run in range(runs):
        command = [*sandbox(app, {**env, "CORPUS_RUN": str(run)}), "node", *spec.node_args]
        out, timed = carriers.capture(
            [*command, spec.program], _TIMEOUT, split=spec.carrier in carriers.CARRIERS
        )
        merged += out
        lines += timed
    manifest = json.loads((app / "manifest.json").read_text())
    return Capture(bytes(merged), lines, manifest)


def generate(spec: Spec, variant: str, out: Path) -> tuple[Path, Path]:
    """Write ``<name>.<variant>.log`` and its manifest into ``out``; return both paths."""
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        work = Path(tmp)
        capture = run_program(spec, variant, work)
        data = capture.merged
        if spec.carrier in carriers.CARRIERS:
            data = carriers.CARRIERS[spec.carrier](capture.lines, work=work, program=spec.program)
    log = out / f"{spec.name}.{variant}.log"
    log.write_bytes(data)
    manifest = {
        "log": log.name,
        "format": spec.description,
        "variant": variant,
        "redeploy_of": f"{spec.name}.deploy.log" if variant == "redeploy" else None,
        "groups": len(capture.manifest["groups"]),  # type: ignore[arg-type]
        "faults": capture.manifest["groups"],
    }
    path = out / f"{spec.name}.{variant}.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return log, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=LOGS, help="where logs and manifests go")
    parser.add_argument("names", nargs="*", help="logs to make (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    specs = [spec_named(n) for n in args.names] if args.names else list(SPECS)
    for spec in specs:
        for variant in VARIANTS:
            log, _ = generate(spec, variant, args.out)
            print(f"{log.name}: {log.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
