#!/usr/bin/env bash
# Hangar on a GPU, measured: builds llama-cpp-python with CUDA (+RPC) into a cached virtual environment outside the
# repository, then runs bench/gpu_check.py (the estimate-accuracy zoo with full and partial offload plus a real model
# if one is given, chat decode through Hangar against a plain llama_cpp loop, a PEFT LoRA and a QLoRA run with
# bitsandbytes) and prints one table.
#
#   bench/gpu_check.sh [--model PATH.gguf] [--hf-model FOLDER] [--out table.md]   # on a machine with an NVIDIA GPU
#   bench/gpu_check.sh --cpu                                                     # the same logic on the CPU, with
#                                                                                # the repository's own environment
#
# Environment: HANGAR_GPU_VENV (default ~/.cache/hangar/gpu-venv), PYTHON (default python3.11),
# LLAMA_CPP_VERSION (default 0.3.36), CUDA_ARCHS (default: native, the GPU in this machine).
# Without an NVIDIA GPU (no nvidia-smi, or it lists no device) it stops at once with exit code 2.
#
# Metal (Apple Silicon) equivalent, by hand until a Mac runs it:
#   CMAKE_ARGS="-DGGML_METAL=on -DGGML_RPC=ON" pip install --no-binary llama-cpp-python llama-cpp-python==0.3.36
#   pip install "mlx-lm>=0.28" torch transformers peft
#   python bench/gpu_check.py --metal [--model PATH.gguf]
# There the zoo runs with full and partial offload on MTL0 (budget: recommendedMaxWorkingSetSize), chat decode
# is compared the same way, fine-tuning runs on MLX (LoRA, and QLoRA on a 4-bit quantized base); bitsandbytes
# has no Metal backend, so the PEFT QLoRA row reads "n/a".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HANGAR_GPU_VENV:-$HOME/.cache/hangar/gpu-venv}"
PYTHON="${PYTHON:-python3.11}"
LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
CUDA_ARCHS="${CUDA_ARCHS:-native}"

if [[ "${1:-}" == "--cpu" ]]; then
    shift
    CPU_PYTHON="${ROOT}/.venv/bin/python"
    [[ -x "${CPU_PYTHON}" ]] || CPU_PYTHON="$(command -v python3)"
    exec "${CPU_PYTHON}" "${ROOT}/bench/gpu_check.py" --cpu "$@"
fi

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or lists no device); nothing to measure." >&2
    echo "gpu_check: run it on a machine with a GPU, or 'bench/gpu_check.sh --cpu' to check the script itself." >&2
    exit 2
fi
if ! command -v nvcc >/dev/null 2>&1 && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
    echo "gpu_check: the CUDA toolkit (nvcc) is missing: llama.cpp cannot be built with CUDA here." >&2
    exit 2
fi
export PATH="/usr/local/cuda/bin:${PATH}"

STAMP="${VENV}/.hangar-gpu-build"
WANT="llama-cpp-python ${LLAMA_CPP_VERSION} cuda ${CUDA_ARCHS}"
if [[ ! -f "${STAMP}" || "$(cat "${STAMP}")" != "${WANT}" ]]; then
    echo "gpu_check: building ${WANT} into ${VENV} (once; later runs reuse it)" >&2
    "${PYTHON}" -m venv "${VENV}"
    "${VENV}/bin/pip" install -q --upgrade pip
    # torch first, built for the installed driver (the default wheel on Linux is the CUDA one)
    "${VENV}/bin/pip" install -q torch "transformers>=4.45" "peft>=0.13" bitsandbytes accelerate
    CMAKE_ARGS="-DGGML_CUDA=on -DGGML_RPC=ON -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS}" \
        "${VENV}/bin/pip" install -q --no-binary llama-cpp-python --no-cache-dir "llama-cpp-python==${LLAMA_CPP_VERSION}"
    "${VENV}/bin/pip" install -q -e "${ROOT}" gguf numpy psutil nvidia-ml-py pytest
    echo "${WANT}" > "${STAMP}"
fi

cd "${ROOT}"
exec "${VENV}/bin/python" bench/gpu_check.py "$@"
