"""Generate (or check) the Python code for every .proto file with grpcio-tools.

The sources live under ``proto/blindgate/v1``; the generated modules are installed as the
import package ``blindgate_proto`` (``blindgate_proto.v1.site_pb2`` …), a name no other
distribution uses.  ``python proto/generate.py`` rewrites them; ``--check`` exits non-zero
when a generated module is missing or differs from what the .proto files produce.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = Path(__file__).resolve().parent / "blindgate"
PACKAGE = "blindgate_proto"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every .proto source into ``out_dir/blindgate_proto``; the written files.

    The sources are staged under ``blindgate_proto/`` first, so that the generated modules
    import each other as ``blindgate_proto.v1.…``.
    """
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    staged = out_dir / "src"
    built = out_dir / "out"
    built.mkdir()
    protos = []
    for source in sorted(SOURCES.rglob("*.proto")):
        target = staged / PACKAGE / source.relative_to(SOURCES)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        protos.append(str(target.relative_to(staged)))
    args = [
        "protoc",
        f"-I{staged}",
        f"-I{include}",
        f"--python_out={built}",
        f"--grpc_python_out={built}",
        f"--pyi_out={built}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in built.rglob("*_pb2*.py*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        stale = []
        for produced in generate(out):
            target = ROOT / produced.relative_to(out / "out")
            if args.check:
                if not target.exists() or not filecmp.cmp(produced, target, shallow=False):
                    stale.append(str(target.relative_to(ROOT)))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(produced, target)
        if stale:
            print("generated code is stale; run `python proto/generate.py`:", *stale, sep="\n  ")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
