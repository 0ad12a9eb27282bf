"""pytest configuration for checking the tutorials' committed outputs with nbval (`./dev test` runs it).

`nbdev_clean` removes execution counts from committed notebooks, and nbval takes a code cell without one for a
cell that was never run, failing it with "Unrun reference cell has outputs". Every code cell with committed
outputs was run (they are written by `./dev outputs`), so each is given a count before nbval checks it."""


def pytest_collection_modifyitems(items):
    for item in items:
        cell = getattr(item, "cell", None)  # nbval's items carry their notebook cell
        if cell is not None and cell.get("outputs") and cell.get("execution_count") is None:
            cell.execution_count = 1
