"""imaging/ owns every DICOM writer and the page renderer: models/, aiws/ and plugins/ import neither
highdicom nor PIL (issue 22). Checked twice: with the shared hook's own pattern, and by parsing every
module (which also catches ``import os, PIL`` and imports inside functions)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "aiws", "plugins")
FORBIDDEN = {"highdicom", "PIL"}
#: The shared hook's pattern.
HOOK = re.compile(r"^\s*(import|from)\s+(highdicom|PIL)\b", re.MULTILINE)


def forbidden_imports(path: Path) -> list[str]:
    """``path:line module`` of every import of highdicom or PIL in *path* (by the hook's pattern and by AST)."""
    text = path.read_text(encoding="utf-8")
    found = {f"{path}:{text.count(chr(10), 0, m.start()) + 1} {m.group(2)}" for m in HOOK.finditer(text)}
    for node in ast.walk(ast.parse(text, filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {f"{path}:{node.lineno} {n.split('.')[0]}" for n in names if n.split(".")[0] in FORBIDDEN}
    return sorted(found)


def test_models_aiws_plugins_import_no_highdicom_or_pil() -> None:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 50  # the packages were found
    offenders = [hit for path in files for hit in forbidden_imports(path)]
    assert offenders == [], "write DICOM and draw pages through imaging/: " + ", ".join(offenders)


def test_the_check_finds_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os, PIL.Image\n\ndef f():\n    from highdicom.sr import srread\n"
                      "    import numpy as np\n    from imaging.sr import write_sr\n", encoding="utf-8")
    assert [hit.split(" ")[1] for hit in forbidden_imports(module)] == ["PIL", "highdicom"]
