"""The rooms of src/kdistill stay layered: a room imports only rooms below it, so there is
no import cycle and nothing imports the facade (api) or the command line."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kdistill"

# Bottom to top; modules at the package root are rooms of their own.
LAYERS = [
    {"errors", "files", "plugins", "config"},
    {"data"},
    {"models"},
    {"losses"},
    {"tasks"},
    {"engine"},
    {"teachers"},
    {"export"},
    {"methods"},
    {"reports"},
    {"studies"},
    {"api"},
    {"cli", "__main__"},
]


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "kdistill" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "kdistill":
                found.update(f"kdistill.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_room_imports_only_rooms_below_it():
    level = {room: index for index, rooms in enumerate(LAYERS) for room in rooms}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and len(relative.parts) == 1:
            continue  # the package docstring's lazy facade
        own = relative.parts[0].removesuffix(".py")
        assert own in level, f"{relative}: room {own!r} is not in LAYERS"
        for module in _imports(path):
            other = _room(module)
            if other is None or other == own or other not in level:
                continue
            if level[other] > level[own]:
                upward.append(f"{relative} imports {module}")
    assert not upward, upward
