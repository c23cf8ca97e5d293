"""Start Hangar's window as ``python main.py`` does, report the seconds from launch to the first event-loop turn
after the window is shown, and leave at once (``bench/startup.py``). Developer tooling: not shipped.

    HANGAR_LAUNCHED_AT=<time.time()> python -m tests.tools.first_paint
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    import ui.app as ui_app

    create_window = ui_app.create_window

    def create_and_report(context):  # type: ignore[no-untyped-def]
        from PySide6.QtCore import QTimer

        window = create_window(context)

        def report_and_quit() -> None:
            started = float(os.environ.get("HANGAR_LAUNCHED_AT", "0") or 0)
            if started:
                print(f"window-shown-seconds {time.time() - started:.4f}", flush=True)
            os._exit(0)  # background work the pages started is not part of start-up

        QTimer.singleShot(0, report_and_quit)
        return window

    ui_app.create_window = create_and_report
    ui_app.show_welcome = lambda *_args: None
    import main as hangar_main

    return hangar_main.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
