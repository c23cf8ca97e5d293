"""Build llama.cpp's own ``llama-perplexity`` from the sources vendored in the llama-cpp-python sdist Hangar uses,
into a cache folder outside the repository, so the Workshop's figures can be checked against the reference tool.

    python bench/workshop_llama_tools.py            # ~/.cache/hangar/llama-build/bin/llama-perplexity
    HANGAR_LLAMA_TOOLS=/some/dir python bench/workshop_llama_tools.py

Needs cmake, a C++ compiler and the package index; about 15 minutes on two cores, once (``make test`` builds it
when the cache lacks it, as pip builds llama-cpp-python's wheel once). Run by hand, the comparison test skips,
saying why, when the tool is not built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

CACHE = Path(os.environ.get("HANGAR_LLAMA_TOOLS", Path.home() / ".cache" / "hangar"))
BUILD = CACHE / "llama-build"
TOOL = BUILD / "bin" / "llama-perplexity"


def perplexity_tool() -> Path | None:
    """The built tool (``$HANGAR_LLAMA_PERPLEXITY`` overrides where it is), or None."""
    override = os.environ.get("HANGAR_LLAMA_PERPLEXITY")
    path = Path(override) if override else TOOL
    return path if path.is_file() and os.access(path, os.X_OK) else None


def build() -> Path:
    release = version("llama_cpp_python")
    src = CACHE / "src"
    src.mkdir(parents=True, exist_ok=True)
    archive = src / f"llama_cpp_python-{release}.tar.gz"
    if not archive.exists():
        pip = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={release}"]
        subprocess.run([*pip, "--no-binary", ":all:", "--no-deps", "-d", str(src)], check=True)
    tree = src / f"llama_cpp_python-{release}"
    if not tree.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(src, filter="data")
    sources = tree / "vendor" / "llama.cpp"
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF"]
    flags += [
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DBUILD_SHARED_LIBS=OFF",
    ]
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", str(sources), "-B", str(BUILD), *generator, *flags], check=True)
    jobs = str(max(1, (os.cpu_count() or 2)))
    subprocess.run(["cmake", "--build", str(BUILD), "--target", "llama-perplexity", "-j", jobs], check=True)
    return TOOL


if __name__ == "__main__":
    print(perplexity_tool() or build())
