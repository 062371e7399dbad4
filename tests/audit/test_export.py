"""An independent auditor checks an audit export with the standalone verifier and the agency's public key
alone: a copy of the one module, run by a Python that imports nothing of FundTrail."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fundtrail.audit import trust
from fundtrail.audit import verifier as verifier_module
from fundtrail.cases import cases
from fundtrail.cases.context import operation

VERIFIER = Path(verifier_module.__file__)


def _fill(db, n: int = 4) -> None:
    with operation(db, "ivo") as ctx:
        case = cases.open_case(ctx, "Export test")
    for _ in range(n):
        with operation(db, "ivo") as ctx:
            cases.show_case(ctx, case.number, reason="review")


def _standalone(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    copy = tmp_path / "auditor" / "verifier.py"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(VERIFIER, copy)
    # -I: no PYTHONPATH, no user site, the script's folder first; the copy cannot reach FundTrail's package
    return subprocess.run(
        [sys.executable, "-I", str(copy), *args], capture_output=True, text=True, cwd=copy.parent, timeout=120
    )


def _agency_key(home: Path) -> str:
    (key,) = trust.owned_by(trust.load(home), trust.AGENCY)
    return key.public_key


def test_the_verifier_module_needs_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(VERIFIER.read_text())
    imported = {
        (n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}


def test_an_auditor_verifies_an_export_with_the_public_key_alone(agency_db, cli, home, tmp_path) -> None:
    _fill(agency_db)
    head = cli("audit", "head", "--home", str(home), "--format", "json")
    kept = tmp_path / "kept.json"
    kept.write_text(head.stdout)
    _fill(agency_db, 2)
    out = tmp_path / "export.json"
    done = cli(
        "audit",
        "export",
        "--home",
        str(home),
        "--as",
        "aud",
        "-o",
        str(out),
        "--head",
        str(kept),
        "--format",
        "json",
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert (
        summary["records"] > 0
        and summary["heads"] > 1
        and summary["consistency_proofs"] >= summary["heads"] - 1
    )
    key = _agency_key(home)
    ok = _standalone(tmp_path, str(out), "--public-key", key, "--head", str(kept), "--json")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["intact"] and result["records"] == summary["records"] and result["kept_heads"] == 1
    # the export itself was recorded in the log before it was written
    actions = [r["action"] for r in json.loads(out.read_text())["records"]]
    assert actions[-1] == "audit.export"


def test_the_standalone_verifier_finds_tampering_and_untrusted_keys(agency_db, cli, home, tmp_path) -> None:
    _fill(agency_db)
    out = tmp_path / "export.json"
    assert cli("audit", "export", "--home", str(home), "--as", "aud", "-o", str(out)).exit_code == 0
    key = _agency_key(home)
    doc = json.loads(out.read_text())
    doc["records"][2]["actor"] = "mallory"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    bad = _standalone(tmp_path, str(edited), "--public-key", key)
    assert bad.returncode == 1 and "record 3" in bad.stderr and "edited" in bad.stderr
    other = "fFrcPazSGhKGNDDbG6xv3A43/fG0qxlDM9PnsFs8LSY="
    untrusted = _standalone(tmp_path, str(out), "--public-key", other)
    assert untrusted.returncode == 1 and "not trusted" in untrusted.stderr
    doc = json.loads(out.read_text())
    doc["records"] = doc["records"][:-2]
    doc["heads"] = [h for h in doc["heads"] if h["tree_size"] <= len(doc["records"])]
    doc["consistency"] = [p for p in doc["consistency"] if p["to_size"] <= len(doc["records"])]
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(doc))
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(json.loads(out.read_text())["heads"][-1]))
    truncated = _standalone(tmp_path, str(cut), "--public-key", key, "--head", str(kept))
    assert truncated.returncode == 1 and "no longer extends kept head" in truncated.stderr


def test_the_standalone_verifier_says_what_input_is_bad(tmp_path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    result = _standalone(tmp_path, str(junk), "--public-key", "fFrcPazSGhKGNDDbG6xv3A43/fG0qxlDM9PnsFs8LSY=")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "junk.json" in result.stderr
    junk.write_text(json.dumps({"format": "something else"}))
    result = _standalone(tmp_path, str(junk), "--public-key", "fFrcPazSGhKGNDDbG6xv3A43/fG0qxlDM9PnsFs8LSY=")
    assert result.returncode == 2 and "not a FundTrail audit export" in result.stderr
    result = _standalone(tmp_path, str(junk), "--public-key", "short")
    assert result.returncode == 2
