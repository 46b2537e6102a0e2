"""Build hook of gloss-client: generates the gRPC stubs from the repository's proto files.

`build_py` (run by `pip install`, `pip install -e` and `python -m build`) compiles
`proto/gloss/v1/*.proto` with grpcio-tools into `src/gloss_client/v1/` before the package is
copied, rewriting the generated absolute imports (`from gloss.v1 import ...`) to the package's
own (`from gloss_client.v1 import ...`). An sdist carries a copy of the proto files, so a wheel
built from it needs no checkout. The package's runtime requirements are pinned at least to the
grpcio and protobuf versions the stubs were generated for (their version checks refuse older).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).parent.resolve()
OUT = HERE / "src" / "gloss_client" / "v1"
# Where the proto files are: $GLOSS_PROTO_DIR, the copy inside an sdist, or the checkout.
SDIST_PROTO = HERE / "proto"
REPO_PROTO = HERE.parent.parent / "proto"


def proto_root() -> Path:
    """The directory holding `gloss/v1/*.proto`."""
    candidates = [Path(p) for p in [os.environ.get("GLOSS_PROTO_DIR")] if p]
    candidates += [SDIST_PROTO, REPO_PROTO]
    for root in candidates:
        if any((root / "gloss" / "v1").glob("*.proto")):
            return root
    tried = ", ".join(str(c) for c in candidates)
    raise SystemExit(f"gloss-client: no gloss/v1/*.proto found (tried {tried}); set GLOSS_PROTO_DIR")


def _rewrite(text: str) -> str:
    """Points the generated cross-file imports at this package."""
    text = re.sub(r"^(\s*)from gloss\.v1 import ", r"\1from gloss_client.v1 import ", text, flags=re.M)
    return re.sub(r"^(\s*)import gloss\.v1\.(\w+)", r"\1from gloss_client.v1 import \2", text, flags=re.M)


def generate() -> None:
    """Compiles every proto file into OUT (replacing earlier generated files)."""
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    protos = sorted(str(p.relative_to(root)) for p in (root / "gloss" / "v1").glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"gloss-client: protoc failed on {root}")
        for old in OUT.glob("*_pb2*.py*"):
            old.unlink()
        for made in sorted((Path(tmp) / "gloss" / "v1").iterdir()):
            (OUT / made.name).write_text(_rewrite(made.read_text()))


def runtime_requirements() -> list[str]:
    """grpcio and protobuf at least as new as the generator (the stubs check both at import)."""
    from importlib.metadata import version

    tools = version("grpcio-tools")
    gencode = "4.21"
    sample = OUT / "common_pb2.py"
    if sample.exists():
        m = re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)", sample.read_text())
        if m:
            gencode = ".".join(m.groups())
    return [f"grpcio>={tools}", f"protobuf>={gencode}"]


class BuildPy(build_py):
    """`build_py` that generates the stubs first (again, should the proto files have changed)."""

    def run(self) -> None:
        generate()
        super().run()


class Sdist(sdist):
    """`sdist` that carries the proto files, so the wheel can be built without the checkout."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        src = proto_root() / "gloss"
        shutil.copytree(src, Path(base_dir) / "proto" / "gloss", dirs_exist_ok=True)


# Generated before setup() too: the requirements are read from the generated code.
generate()
setup(cmdclass={"build_py": BuildPy, "sdist": Sdist}, install_requires=runtime_requirements())
