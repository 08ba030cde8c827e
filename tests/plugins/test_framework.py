"""The plugin framework: registry with entry points, runner formats and errors, import rules."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugins.base import Plugin
from plugins.errors import InvalidInput, PluginError, UnknownPlugin
from plugins.registry import BUILTINS, ENTRY_POINT_GROUP, Registry
from plugins.runner import audit_detail, detect_format, run_plugin, sha256_hex

ROOT = Path(__file__).resolve().parents[2]


def _fake_distribution(site: Path, module: str, source: str, entry: str) -> None:
    """A real installed distribution as importlib.metadata sees it: a module + .dist-info."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry}\n")


PLUGIN_SOURCE = """
from pydantic import BaseModel
from plugins.base import InputModel, Plugin, PluginOutput

class In(InputModel):
    x: float

class Out(PluginOutput):
    doubled: float

class Doubler(Plugin):
    name = "doubler"
    version = "0.1"
    summary = "doubles x"
    input_model = In
    output_model = Out

    def run(self, data):
        return Out(plugin=self.name, version=self.version, rules=["x * 2"], explanation=[f"{data.x} * 2"],
                   doubled=2 * data.x)
"""


def test_entry_point_plugins_are_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "aiws_doubler", PLUGIN_SOURCE,
                       "doubler = aiws_doubler:Doubler\nsepsis = aiws_doubler:Doubler")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    assert registry.names() == sorted([*BUILTINS, "doubler"])
    out = run_plugin(registry.get("doubler"), b'{"x": 21}').body()
    assert out["doubled"] == 42 and out["plugin"] == "doubler"
    assert type(registry.get("sepsis")).__module__ == "plugins.sepsis.plugin"  # a built-in name wins


def test_entry_point_that_is_not_a_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "aiws_bogus", "VALUE = 3\n", "bogus = aiws_bogus:VALUE")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="not a plugins.base.Plugin"):
        Registry().get("bogus")


def test_unknown_plugin() -> None:
    with pytest.raises(UnknownPlugin, match="plugin 'nope' is not registered"):
        Registry().get("nope")


def test_every_builtin_describes_itself() -> None:
    registry = Registry(dict(BUILTINS))
    for name in BUILTINS:
        plugin = registry.get(name)
        assert isinstance(plugin, Plugin) and plugin.name == name
        info = plugin.describe()
        assert info["version"] and info["summary"] and "properties" in info["input_schema"]


def test_runner_formats_and_errors() -> None:
    plugin = Registry(dict(BUILTINS)).get("sepsis")
    assert detect_format(b" {", None) == "json" and detect_format(b"a,b\n", None) == "csv"
    assert detect_format(b"{", "text/csv; charset=utf-8") == "csv"
    batch = run_plugin(plugin, b'[{"heart_rate": 80}, {"heart_rate": 130}]')
    assert batch.batch and len(batch.body()) == 2 and batch.input_sha256 == sha256_hex(b'[{"heart_rate": 80}, {"heart_rate": 130}]')
    with pytest.raises(InvalidInput, match="must be JSON"):
        run_plugin(plugin, b"{not json")
    with pytest.raises(InvalidInput) as err:
        run_plugin(plugin, b'[{"heart_rate": 80}, {"heart_rate": -5}]')
    assert err.value.problems[0].field == "[1].heart_rate" and "greater than or equal to 0" in err.value.problems[0].rule
    with pytest.raises(InvalidInput) as err:
        run_plugin(plugin, b'{"resourceType": "Patient"}')
    assert err.value.problems[0].field == "resourceType"
    with pytest.raises(InvalidInput, match="at least one record"):
        run_plugin(plugin, b"[]")


def test_audit_detail_has_no_identifiers() -> None:
    data = b'{"ref": "Patient/SECRET-42", "heart_rate": 80}'
    detail = audit_detail("sepsis", "1.0.0", data, "ok", records=1)
    assert detail["input_sha256"] == sha256_hex(data) and "SECRET" not in repr(detail)
    assert set(detail) == {"plugin", "version", "input_sha256", "status", "at", "records"}


def test_plugins_import_neither_aiws_nor_torch() -> None:
    code = ("import sys, plugins.registry as r; [r.BUILTINS[n]() for n in r.BUILTINS]; "
            "import training.sepsis.train; "
            "bad = [m for m in ('aiws', 'torch', 'monai') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
