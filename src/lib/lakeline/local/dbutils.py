"""A local stand-in for the parts of ``dbutils`` the notebooks use.

Widgets (text, dropdown, get, getAll), task values (set, get), notebook exit and
notebook run behave as they do in a Databricks job: parameters passed to a task override
widget defaults, a task value set by one task can be read by the tasks after it, and a
notebook can run another one (the nutter fixtures under tests/nutter do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class NotebookExit(Exception):  # noqa: N818 - mirrors dbutils.notebook.exit
    """Raised by ``dbutils.notebook.exit`` to end the notebook with a value."""

    def __init__(self, value: str):
        super().__init__(value)
        self.value = value


class Widgets:
    def __init__(self, parameters: dict[str, str]):
        self._parameters = dict(parameters)
        self._defaults: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._defaults[name] = defaultValue

    def dropdown(self, name, defaultValue, choices, label=None) -> None:  # noqa: N803
        if defaultValue not in choices:
            raise ValueError(f"widget '{name}': default {defaultValue!r} is not a choice")
        value = self._parameters.get(name)
        if value is not None and value not in choices:
            raise ValueError(f"widget '{name}': {value!r} is not one of {list(choices)}")
        self._defaults[name] = defaultValue

    combobox = dropdown

    def get(self, name: str) -> str:
        if name in self._parameters:
            return str(self._parameters[name])
        if name in self._defaults:
            return self._defaults[name]
        raise ValueError(f"InputWidgetNotDefined: no widget named '{name}'")

    def getAll(self) -> dict[str, str]:  # noqa: N802
        return {**self._defaults, **self._parameters}

    def removeAll(self) -> None:  # noqa: N802
        self._defaults.clear()


class TaskValues:
    def __init__(self, store: dict[str, dict[str, Any]], task_key: str):
        self._store = store
        self._task_key = task_key

    def set(self, key: str, value: Any) -> None:
        json.dumps(value)  # the real one only accepts JSON-serialisable values
        self._store.setdefault(self._task_key, {})[key] = value

    def get(self, taskKey: str, key: str, default: Any = None, debugValue: Any = None) -> Any:  # noqa: N803
        values = self._store.get(taskKey, {})
        if key in values:
            return values[key]
        if default is not None:
            return default
        raise ValueError(f"task value '{key}' of task '{taskKey}' was never set")


class Jobs:
    def __init__(self, task_values: TaskValues):
        self.taskValues = task_values


class Notebook:
    def __init__(self, path: str | Path | None = None, spark=None):
        self._path = Path(path) if path is not None else None
        self._spark = spark

    @staticmethod
    def exit(value: str) -> None:
        raise NotebookExit(value)

    def run(self, path: str, timeout_seconds: int = 0, arguments: dict | None = None) -> str:
        """Run another notebook to its end with ``arguments`` as its widget values.

        As in a workspace, ``path`` has no ``.py`` and a relative one starts from the calling
        notebook's folder; the result is what the notebook gave ``dbutils.notebook.exit``
        ("" if it never exits). The child shares this process's SparkSession and gets its
        own widgets and task values. Differences from a workspace: ``timeout_seconds`` is not
        enforced, and an exception in the child propagates as is (a workspace raises a
        WorkflowException naming the child run).
        """
        from lakeline.local.notebooks import run_notebook

        if self._spark is None or self._path is None:
            raise RuntimeError(
                "dbutils.notebook.run needs the calling notebook's path and SparkSession; "
                "run the notebook with lakeline.local.notebooks.run_notebook"
            )
        target = Path(path) if Path(path).is_absolute() else self._path.parent / path
        if target.suffix != ".py":
            target = target.with_name(target.name + ".py")
        target = target.resolve()
        if not target.is_file():
            raise FileNotFoundError(
                f"dbutils.notebook.run: no notebook {path!r} (looked for {target}) "
                f"from {self._path}"
            )
        parameters = {k: str(v) for k, v in (arguments or {}).items()}
        value = run_notebook(target, self._spark, parameters, {}, target.stem)
        return "" if value is None else value


class LocalDbutils:
    """``dbutils`` for one local notebook run.

    ``notebook_path`` and ``spark`` (given by ``run_notebook``) let the notebook run other
    notebooks with ``dbutils.notebook.run``.
    """

    def __init__(
        self,
        parameters: dict[str, str],
        task_values: dict,
        task_key: str = "local",
        *,
        notebook_path: str | Path | None = None,
        spark=None,
    ):
        self.widgets = Widgets(parameters)
        self.jobs = Jobs(TaskValues(task_values, task_key))
        self.notebook = Notebook(notebook_path, spark)
