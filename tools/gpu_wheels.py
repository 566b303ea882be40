"""Wheels for `make gpu-check` on a GPU machine without internet (Python 3.12, x86-64): run where pip
reaches the package registry; `make gpu-wheels` calls it and the wheels land in .whl/.

pip resolves fastai, pretrainedmodels' needs and segmentation_models_pytorch for that Python; what a
PyTorch GPU image already holds (torch, CUDA libraries, the scientific stack) is left out, so the
folder stays small and never shadows the image's own builds. pretrainedmodels has no wheel on PyPI:
it is built here (pure Python).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WANTED = ["fastai", "six", "munch", "tqdm", "segmentation-models-pytorch", "jsonschema"]  # jsonschema: resolve_config
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]
# Already in a PyTorch GPU image, large, or compiled against its numpy: never carried.
ON_THE_IMAGE = re.compile(r"^(torch|torchvision|triton|nvidia-.*|numpy|scipy|pandas|matplotlib|scikit-learn|"
                          r"pillow|sympy|networkx|spacy.*|thinc|blis|srsly|preshed|cymem|murmurhash|"
                          r"pydantic.*|contourpy|kiwisolver|fonttools|pyyaml|jinja2|markupsafe|fsspec|"
                          r"filelock|huggingface-hub|hf-xet|safetensors|timm|setuptools|packaging|"
                          r"typing-extensions|requests|urllib3|certifi|idna|charset-normalizer)$")


def main(out: str = ".whl") -> None:
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                        *PLATFORM, "--target", tmp, *WANTED], check=True)
        resolved = json.loads(report.read_text())["install"]
    pins = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in resolved
                  if not ON_THE_IMAGE.match(i["metadata"]["name"].lower().replace("_", "-")))
    subprocess.run([*pip, "download", "--quiet", "--no-deps", *PLATFORM, "-d", out, *pins], check=True)
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "-w", out, "pretrainedmodels==0.7.4"], check=True)
    print(f"{len(pins) + 1} wheels in {out}/: {' '.join(pins)} pretrainedmodels==0.7.4")


if __name__ == "__main__":
    main(*sys.argv[1:])
