from typing import Optional

class PythonPanel:
    # nuke.getPaneFor returns a Dock, a class types-nuke names but does not define
    def addToPane(self, pane: object = ...) -> object: ...

def registerWidgetAsPanel(widget: str, name: str, id: str, create: bool = ...) -> Optional[PythonPanel]: ...
