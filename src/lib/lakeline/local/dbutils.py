"""A local stand-in for the parts of ``dbutils`` the notebooks use.

Widgets (text, dropdown, get, getAll), task values (set, get) and notebook exit behave
as they do in a Databricks job: parameters passed to a task override widget defaults,
a task value set by one task can be read by the tasks after it.
"""

from __future__ import annotations

import json
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
    @staticmethod
    def exit(value: str) -> None:
        raise NotebookExit(value)


class LocalDbutils:
    """``dbutils`` for one local notebook run."""

    def __init__(self, parameters: dict[str, str], task_values: dict, task_key: str = "local"):
        self.widgets = Widgets(parameters)
        self.jobs = Jobs(TaskValues(task_values, task_key))
        self.notebook = Notebook()
