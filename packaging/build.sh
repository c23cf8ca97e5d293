#!/usr/bin/env bash
# Build the one-folder app into dist/Hangar (dist/Hangar.app on macOS) and, on Linux, add the desktop entry
# and launcher. Usage: packaging/build.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" packaging/make_icons.py
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller packaging/hangar.spec
if [ "$(uname)" = Linux ]; then
    install -m 644 packaging/linux/hangar.desktop dist/Hangar/hangar.desktop
    install -m 644 resources/icons/hangar-256.png dist/Hangar/hangar.png
    install -m 755 packaging/linux/AppRun dist/Hangar/AppRun
fi
echo "built: $(ls -d dist/Hangar*)"
