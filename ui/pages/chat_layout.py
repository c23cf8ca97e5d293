"""How the Chat page shares its width: the conversation list on the left and the settings panel on the right show
while the transcript keeps a readable width beside them. In a narrow window the panel that fits least gives way
first (settings, then the list) and comes back when the window widens; the "Chats" and "Settings" switches show or
hide either by hand, and a panel switched on in a narrow window makes room by hiding the other one."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QAbstractButton, QBoxLayout, QWidget

#: The narrowest the transcript and composer column gets while a side panel is shown beside it.
CENTER_WIDTH = 380


class SidePanels(QObject):
    """Watches ``page``'s width and shows its side ``panels`` (each with its switch) as far as they fit."""

    def __init__(
        self,
        page: QWidget,
        row: QBoxLayout,
        center: QWidget,
        panels: list[tuple[QWidget, QAbstractButton]],
    ) -> None:
        super().__init__(page)
        self.page = page
        self.row = row
        self.center = center
        self.panels = panels
        #: What the person wants shown (switches), and the panel switched on last (it wins when only one fits).
        self.wanted = {id(panel): True for panel, _switch in panels}
        self.last: QWidget | None = None
        for panel, switch in panels:
            switch.toggled.connect(lambda on, p=panel: self._switched(p, on))
        self._holder: QWidget | None = None
        page.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.arrange()
        elif watched is self.page and event.type() in (QEvent.Type.Show, QEvent.Type.ParentChange):
            self._watch_holder()
        return False

    def _watch_holder(self) -> None:
        holder = self.page.parentWidget()
        if holder is not self._holder:
            if self._holder is not None:
                self._holder.removeEventFilter(self)
            self._holder = holder
            if holder is not None:
                holder.installEventFilter(self)
            self.arrange()

    def room(self) -> int:
        """The width the row has: the page's holder (a scroll area's viewport) decides it, not the page, which
        a shown panel would widen."""
        width = self._holder.width() if self._holder is not None else self.page.width()
        layout = self.page.layout()
        if layout is not None:
            margins = layout.contentsMargins()
            width -= margins.left() + margins.right()
        return width

    def _needs(self, shown: list[QWidget]) -> int:
        center = max(CENTER_WIDTH, self.center.minimumSizeHint().width())
        panels = sum(max(p.minimumWidth(), p.minimumSizeHint().width()) for p in shown)
        return center + panels + self.row.spacing() * len(shown)

    def fitting(self) -> list[QWidget]:
        """The panels to show at the page's width: every wanted one that fits, the one switched on last first."""
        wanted = [panel for panel, _switch in self.panels if self.wanted[id(panel)]]
        if self.last in wanted:  # switched on last: kept, the others give way
            wanted.remove(self.last)
            wanted.insert(0, self.last)
        shown: list[QWidget] = []
        for panel in wanted:
            if self._needs([*shown, panel]) <= self.room():
                shown.append(panel)
        return shown

    def arrange(self) -> None:
        shown = self.fitting()
        for panel, switch in self.panels:
            on = panel in shown
            panel.setVisible(on)
            if switch.isChecked() != on:
                switch.blockSignals(True)
                switch.setChecked(on)
                switch.blockSignals(False)

    def _switched(self, panel: QWidget, on: bool) -> None:
        self.wanted[id(panel)] = on
        if on:
            self.last = panel  # it has to show: in a narrow window the other one makes room
        self.arrange()
