"""`socket-gateway check --against`: what a catalog change breaks, against an older file or a git ref, as CI runs
it (the built binary, real git repositories in temporary folders)."""

import json
import os
import subprocess

from cluster_helpers import REPO, cli_path

CATALOG = (REPO / "events.yaml").read_text()
STARTED = "      started_at: datetime\n"
# A new required field in sheet:sync:started (old workers do not send it) and a new optional one (safe).
CHANGED = CATALOG.replace(STARTED, STARTED + "      source: string\n      note: string?\n", 1)
SOURCE_LINE = CHANGED.splitlines().index("      source: string") + 1


def check(*arguments: str, cwd=REPO) -> subprocess.CompletedProcess:
    """Runs `socket-gateway check ARGUMENTS...` in `cwd`."""
    environment = dict(os.environ)
    environment.pop("GIT_DIR", None)
    return subprocess.run(
        [str(cli_path()), "check", *arguments], capture_output=True, text=True, timeout=30, cwd=cwd, env=environment,
        stdin=subprocess.DEVNULL,
    )


def git(folder, *arguments: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=Test", "-c", "user.email=test@example.com", *arguments],
        check=True, capture_output=True, timeout=30,
    )


def expected_lines(new: str, old: str) -> list:
    return [
        f"{new}:{SOURCE_LINE}:7: breaking: server→client event 'sheet:sync:started' $.source: required field "
        "'source' added; breaks workers/publishers: workers/publishers on the old catalog do not send it, and "
        "`serve --catalog` refuses payloads without it",
        f"{new}:{SOURCE_LINE + 1}:7: safe: server→client event 'sheet:sync:started' $.note: optional field 'note' "
        "added",
        f"{new} against {old}: 1 breaking, 1 safe (breaks workers/publishers)",
    ]


def test_check_against_a_file_lists_each_change_and_exits_3_when_something_breaks(tmp_path):
    (tmp_path / "old.yaml").write_text(CATALOG)
    (tmp_path / "events.yaml").write_text(CHANGED)
    result = check("--against", "old.yaml", "events.yaml", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == expected_lines("events.yaml", "old.yaml")


def test_check_against_exits_0_when_every_change_is_safe(tmp_path):
    (tmp_path / "old.yaml").write_text(CATALOG)
    (tmp_path / "events.yaml").write_text(CATALOG.replace(STARTED, STARTED + "      note: string?\n", 1))
    result = check("--against", "old.yaml", "events.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "events.yaml against old.yaml: 0 breaking, 1 safe"
    same = check("--against", "old.yaml", "old.yaml", cwd=tmp_path)
    assert same.returncode == 0
    assert same.stdout == "old.yaml against old.yaml: no changes on the wire\n"


def test_check_against_json(tmp_path):
    (tmp_path / "old.yaml").write_text(CATALOG)
    (tmp_path / "events.yaml").write_text(CHANGED)
    result = check("--against", "old.yaml", "--json", "events.yaml", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert (report["old"], report["new"], report["breaking"], report["safe"]) == ("old.yaml", "events.yaml", 1, 1)
    first = report["findings"][0]
    assert first["severity"] == "breaking" and first["kind"] == "required-field-added"
    assert first["breaks"] == ["workers/publishers"] and first["event"] == "sheet:sync:started"
    assert (first["file"], first["line"], first["column"]) == ("events.yaml", SOURCE_LINE, 7)
    assert first["direction"] == "server→client"


def test_check_against_a_git_ref_reads_the_same_file_at_that_commit(tmp_path):
    repo = tmp_path / "app"
    (repo / "config").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "config" / "events.yaml").write_text(CATALOG)
    git(repo, "add", "config/events.yaml")
    git(repo, "commit", "-q", "-m", "catalog v1")
    (repo / "config" / "events.yaml").write_text(CHANGED)
    git(repo, "commit", "-q", "-a", "-m", "catalog v2")

    # A ref: the catalog's own file at HEAD~1, found next to the catalog wherever the command runs.
    result = check("--against", "HEAD~1", str(repo / "config" / "events.yaml"), cwd=tmp_path)
    new = str(repo / "config" / "events.yaml")
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == expected_lines(new, f"HEAD~1:{new}")
    # REF:PATH, as `git show` reads it, from inside the repository.
    result = check("--against", "HEAD~1:config/events.yaml", "config/events.yaml", cwd=repo)
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == expected_lines("config/events.yaml", "HEAD~1:config/events.yaml")
    # The commit itself against itself.
    same = check("--against", "HEAD", "config/events.yaml", cwd=repo)
    assert same.returncode == 0, same.stderr
    assert same.stdout == "config/events.yaml against HEAD:config/events.yaml: no changes on the wire\n"


def test_check_against_says_why_the_old_catalog_cannot_be_read(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "events.yaml").write_text(CATALOG)
    outside = check("--against", "main", "events.yaml", cwd=plain)
    assert outside.returncode == 74
    assert outside.stderr == (
        "socket-gateway check: error: --against 'main' is not a readable file, and . is not in a git repository "
        "(give an older events.yaml, or run inside the repository)\n"
    )

    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "events.yaml").write_text(CATALOG)
    git(repo, "add", "events.yaml")
    git(repo, "commit", "-q", "-m", "catalog")
    unknown = check("--against", "no-such-branch", "events.yaml", cwd=repo)
    assert unknown.returncode == 74
    assert unknown.stderr == (
        "socket-gateway check: error: --against 'no-such-branch': unknown git ref 'no-such-branch' (try `git fetch`, "
        "or a branch or tag name)\n"
    )
    absent = check("--against", "HEAD:other.yaml", "events.yaml", cwd=repo)
    assert absent.returncode == 74
    assert absent.stderr == (
        "socket-gateway check: error: --against 'HEAD:other.yaml': 'other.yaml' does not exist at HEAD\n"
    )


def test_check_against_an_invalid_old_catalog_prints_its_diagnostics_and_exits_1(tmp_path):
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "events.yaml").write_text(CATALOG.replace("sheet_id: string", "sheet_id: strng", 1))
    git(repo, "add", "events.yaml")
    git(repo, "commit", "-q", "-m", "broken catalog")
    (repo / "events.yaml").write_text(CATALOG)
    result = check("--against", "HEAD", "events.yaml", cwd=repo)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("HEAD:events.yaml:")
    assert "error: unknown type 'strng' for field 'sheet_id'" in result.stderr


BOTH_WAYS = """version: 1
name: Chat
events:
  message:new:
    summary: A message for the client.
    payload:
      text: string
client_events:
  message:send:
    summary: A client sends a message.
    payload:
      text: string
    ack:
      id: uuid
"""


def test_check_against_covers_client_events_and_acks(tmp_path):
    (tmp_path / "old.yaml").write_text(BOTH_WAYS)
    new = BOTH_WAYS.replace("      text: string\n    ack:", "      text: string\n      room: string\n    ack:")
    (tmp_path / "events.yaml").write_text(new.replace("      id: uuid\n", "      id: string\n"))
    result = check("--against", "old.yaml", "events.yaml", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == [
        "events.yaml:13:7: breaking: client→server event 'message:send' $.room: required field 'room' added; "
        "breaks deployed clients: deployed clients do not send it, and the server refuses payloads without it",
        "events.yaml:15:11: breaking: client→server event 'message:send' ack $.id: 'id' changed type from uuid to "
        "string; breaks deployed clients: deployed clients cannot decode string",
        "events.yaml against old.yaml: 2 breaking, 0 safe (breaks deployed clients)",
    ]


def test_check_json_without_against_is_a_usage_error(tmp_path):
    (tmp_path / "events.yaml").write_text(CATALOG)
    result = check("--json", "events.yaml", cwd=tmp_path)
    assert result.returncode == 64
    assert "--json reports a comparison; add --against OLD" in result.stderr
