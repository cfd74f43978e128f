"""A Databricks workspace stand-in on loopback, for tests of real clients.

The real Databricks CLI (``bundle validate`` / ``bundle deploy``, direct engine) and the real
``databricks-sdk`` talk to this server over HTTP exactly as they would to a workspace. It keeps
workspace objects, jobs, runs and permissions in memory, records every request, and lets a test
decide how job runs end and inject faults. It is deliberately small: it serves the REST calls
those clients make for a jobs-and-notebooks bundle and answers anything else with 404
``ENDPOINT_NOT_FOUND`` (listed in :attr:`WorkspaceStandIn.unhandled`), so a new call shows up
as a failing test rather than as silently faked behaviour.

Behaviour that matters to callers and mirrors the real workspace:

* ``workspace/import`` without ``overwrite`` on an existing path fails with
  ``RESOURCE_ALREADY_EXISTS``; the check and the write happen under one lock, so it is an
  atomic create-if-absent (the blue/green promote lock relies on this, as on a real workspace).
* ``.py`` files that start with ``# Databricks notebook source`` become notebooks, stored
  without the extension; other files stay files.
* ``workspace-files/import-file`` answers 404 when the parent folder is missing and 409 when the
  file exists and ``overwrite`` is false.
* ``jobs/update`` replaces the top-level fields it is given; ``jobs/reset`` replaces all settings.

Usage::

    with WorkspaceStandIn() as ws:
        client = WorkspaceClient(host=ws.url, token="dummy")
        ...
        ws.set_run_outcome("[green] lakeline-medallion", "FAILED")
"""

from __future__ import annotations

import base64
import itertools
import json
import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

NOTEBOOK_HEADER = b"# Databricks notebook source"
ORG_ID = "900800700600"

JsonBody = dict[str, Any] | list[Any] | None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty or not JSON)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class WorkspaceObject:
    """A workspace directory, file or notebook."""

    path: str
    object_type: str  # DIRECTORY, FILE or NOTEBOOK
    object_id: int
    content: bytes = b""
    language: str | None = None
    modified_at: int = field(default_factory=lambda: int(time.time() * 1000))

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "resource_id": str(self.object_id),
            "created_at": self.modified_at,
            "modified_at": self.modified_at,
        }
        if self.object_type != "DIRECTORY":
            out["size"] = len(self.content)
        if self.language:
            out["language"] = self.language
        return out


@dataclass
class Fault:
    """An injected failure: the next ``times`` matching requests get this error instead."""

    method: str
    path: str
    status: int
    error_code: str
    message: str
    times: int
    when: Callable[[RecordedRequest], bool] | None = None

    def matches(self, request: RecordedRequest) -> bool:
        if self.times <= 0 or request.method != self.method or request.path != self.path:
            return False
        return self.when is None or self.when(request)


@dataclass
class RunPlan:
    """How runs of one job end: the result state and how many polls they stay RUNNING."""

    result_state: str = "SUCCESS"
    polls: int = 0
    message: str = ""


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _not_found(path: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")


def _canonical(path: str) -> str:
    """The key a workspace path is stored under: ``/Workspace/X`` and ``/X`` are one object."""
    path = posixpath.normpath("/" + path.lstrip("/"))
    if path == "/Workspace":
        return "/"
    if path.startswith("/Workspace/"):
        path = path[len("/Workspace") :]
    return path


class WorkspaceStandIn:
    """In-memory workspace served over HTTP on 127.0.0.1 (see the module docstring)."""

    def __init__(self, user_name: str = "deployer@example.com", port: int = 0) -> None:
        self.user_name = user_name
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.objects: dict[str, WorkspaceObject] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.runs: dict[int, dict[str, Any]] = {}
        self.permissions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.run_plans: dict[str, RunPlan] = {}
        self.default_run_plan = RunPlan()
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._run_polls: dict[int, int] = {}
        self._mkdirs("/")
        self._mkdirs(f"/Users/{user_name}")
        self._mkdirs("/Shared")
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WorkspaceStandIn:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> WorkspaceStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------

    def set_run_outcome(
        self, job_name: str, result_state: str = "SUCCESS", polls: int = 0, message: str = ""
    ) -> None:
        """Runs of the job named ``job_name`` end in ``result_state`` after ``polls`` polls."""
        with self._lock:
            self.run_plans[job_name] = RunPlan(result_state, polls, message)

    def inject_fault(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        error_code: str = "INTERNAL_ERROR",
        message: str = "injected failure",
        times: int = 1,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Fail the next ``times`` requests to ``method path`` (optionally only those ``when``)."""
        with self._lock:
            self.faults.append(Fault(method, path, status, error_code, message, times, when))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.unhandled.clear()

    # -- queries for assertions ------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method and path (path without the query string)."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def job_named(self, name: str) -> dict[str, Any]:
        """The stored job (``job_id``, ``settings``, ...) whose settings name is ``name``."""
        with self._lock:
            found = [j for j in self.jobs.values() if j["settings"].get("name") == name]
        if len(found) != 1:
            names = sorted(j["settings"].get("name") for j in self.jobs.values())
            raise KeyError(f"expected one job named {name!r}, found {len(found)}; jobs: {names}")
        return found[0]

    def object_at(self, path: str) -> WorkspaceObject | None:
        with self._lock:
            return self.objects.get(_canonical(path))

    def paths_under(self, prefix: str) -> list[str]:
        key = _canonical(prefix)
        below = key.rstrip("/") + "/"
        with self._lock:
            return sorted(
                o.path for k, o in self.objects.items() if k == key or k.startswith(below)
            )

    # -- workspace model -------------------------------------------------------------------

    def _mkdirs(self, path: str) -> WorkspaceObject:
        key = _canonical(path)
        existing = self.objects.get(key)
        if existing is not None:
            if existing.object_type != "DIRECTORY":
                raise ApiError(
                    400,
                    "RESOURCE_ALREADY_EXISTS",
                    f"Cannot create directory {path}: a {existing.object_type} exists there.",
                )
            return existing
        if key != "/":
            self._mkdirs(posixpath.dirname(key))
        obj = WorkspaceObject(path=key, object_type="DIRECTORY", object_id=next(self._ids))
        self.objects[key] = obj
        return obj

    def _write(
        self, path: str, content: bytes, *, overwrite: bool, notebook_language: str | None = None
    ) -> WorkspaceObject:
        """Store a file, or a notebook when the content (or the import request) says so."""
        key = _canonical(path)
        object_type, language = "FILE", None
        if notebook_language:
            key, object_type, language = key.removesuffix(".py"), "NOTEBOOK", notebook_language
        elif key.endswith(".py") and content.startswith(NOTEBOOK_HEADER):
            key, object_type, language = key[: -len(".py")], "NOTEBOOK", "PYTHON"
        parent = self.objects.get(posixpath.dirname(key))
        if parent is None or parent.object_type != "DIRECTORY":
            raise ApiError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"The parent folder ({posixpath.dirname(key)}) does not exist.",
            )
        existing = self.objects.get(key)
        if existing is not None:
            if existing.object_type == "DIRECTORY":
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) is a directory.")
            if not overwrite:
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        obj = WorkspaceObject(
            path=key,
            object_type=object_type,
            object_id=existing.object_id if existing else next(self._ids),
            content=content,
            language=language,
        )
        self.objects[key] = obj
        return obj

    def _delete(self, path: str, recursive: bool) -> None:
        key = _canonical(path)
        if key not in self.objects:
            raise _not_found(path)
        children = [k for k in self.objects if k.startswith(key.rstrip("/") + "/")]
        if children and not recursive:
            raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty.")
        for k in [*children, key]:
            del self.objects[k]

    # -- HTTP dispatch ---------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; without this, delayed ACKs add
            # ~40 ms to every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: the recorded requests are the log

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=split.path,
                    query=dict(parse_qsl(split.query, keep_blank_values=True)),
                    body=body,
                )
                status, payload, headers = standin._dispatch(request)
                request = RecordedRequest(**{**request.__dict__, "status": status})
                with standin._lock:
                    standin.requests.append(request)
                    if isinstance(payload, dict) and payload.get("error_code") == (
                        "ENDPOINT_NOT_FOUND"
                    ):
                        standin.unhandled.append(request)
                if isinstance(payload, bytes):
                    data, content_type = payload, "application/octet-stream"
                else:
                    data, content_type = json.dumps(payload or {}).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        return Handler

    def _dispatch(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    return (
                        fault.status,
                        {"error_code": fault.error_code, "message": fault.message},
                        {},
                    )
        route = self._route(request)
        if route is None:
            message = f"No API found for '{request.method} {request.path}'"
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": message}, {}
        try:
            with self._lock:
                result = route(request)
        except ApiError as exc:
            return exc.status, {"error_code": exc.error_code, "message": exc.message}, {}
        if isinstance(result, tuple):
            return result
        return 200, result, {}

    def _route(self, request: RecordedRequest) -> Callable[[RecordedRequest], Any] | None:
        method, path = request.method, request.path
        if path.startswith("/api/2.0/workspace-files/import-file/") and method == "POST":
            return self._import_file
        if path.startswith("/api/2.0/workspace-files/") and method == "GET":
            return self._read_file
        if path.startswith("/api/2.0/permissions/"):
            if method == "GET":
                return self._get_permissions
            return self._set_permissions if method in ("PUT", "PATCH") else None
        for version in ("2.0", "2.1", "2.2"):
            prefix = f"/api/{version}/jobs/"
            if path.startswith(prefix):
                return self._job_routes().get((method, path[len(prefix) :]))
        return self._fixed_routes().get((method, path))

    def _fixed_routes(self) -> dict[tuple[str, str], Callable[[RecordedRequest], Any]]:
        return {
            ("GET", "/.well-known/databricks-config"): self._host_metadata,
            ("POST", "/telemetry-ext"): lambda r: {"errors": [], "numProtoSuccess": 1},
            ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
            ("GET", "/api/2.0/workspace/get-status"): self._get_status,
            ("GET", "/api/2.0/workspace/list"): self._list,
            ("POST", "/api/2.0/workspace/mkdirs"): self._mkdirs_route,
            ("POST", "/api/2.0/workspace/import"): self._import,
            ("GET", "/api/2.0/workspace/export"): self._export,
            ("POST", "/api/2.0/workspace/delete"): self._delete_route,
        }

    def _job_routes(self) -> dict[tuple[str, str], Callable[[RecordedRequest], Any]]:
        return {
            ("POST", "create"): self._jobs_create,
            ("POST", "reset"): self._jobs_reset,
            ("POST", "update"): self._jobs_update,
            ("GET", "get"): self._jobs_get,
            ("GET", "list"): self._jobs_list,
            ("POST", "delete"): self._jobs_delete,
            ("POST", "run-now"): self._run_now,
            ("GET", "runs/get"): self._runs_get,
            ("GET", "runs/list"): self._runs_list,
            ("POST", "runs/cancel"): self._runs_cancel,
            ("GET", "runs/get-output"): self._runs_get_output,
        }

    # -- identity ----------------------------------------------------------------------------

    def _host_metadata(self, request: RecordedRequest) -> Any:
        return {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": ORG_ID, "cloud": "aws"}

    def _me(self, request: RecordedRequest) -> Any:
        user = {
            "id": "4242",
            "userName": self.user_name,
            "displayName": self.user_name.split("@")[0],
            "active": True,
            "emails": [{"value": self.user_name, "primary": True}],
            "groups": [{"display": "users", "value": "1"}],
        }
        return 200, user, {"X-Databricks-Org-Id": ORG_ID}

    # -- workspace ---------------------------------------------------------------------------

    def _get_status(self, request: RecordedRequest) -> Any:
        path = request.query.get("path", "")
        obj = self.objects.get(_canonical(path))
        if obj is None:
            raise _not_found(path)
        return obj.info()

    def _list(self, request: RecordedRequest) -> Any:
        path = request.query.get("path", "")
        key = _canonical(path)
        if key not in self.objects:
            raise _not_found(path)
        children = [
            o.info()
            for k, o in sorted(self.objects.items())
            if k != key and posixpath.dirname(k) == key
        ]
        return {"objects": children}

    def _mkdirs_route(self, request: RecordedRequest) -> Any:
        self._mkdirs(request.json["path"])
        return {}

    def _import(self, request: RecordedRequest) -> Any:
        spec = request.json or {}
        content = base64.b64decode(spec.get("content") or "")
        fmt = spec.get("format") or "SOURCE"
        if fmt not in ("AUTO", "SOURCE", "RAW"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"format {fmt} is not supported here")
        language = spec.get("language") if fmt == "SOURCE" else None
        self._write(
            spec["path"], content, overwrite=bool(spec.get("overwrite")), notebook_language=language
        )
        return {}

    def _import_file(self, request: RecordedRequest) -> Any:
        path = "/" + unquote(request.path[len("/api/2.0/workspace-files/import-file/") :])
        overwrite = request.query.get("overwrite", "false").lower() == "true"
        try:
            self._write(path, request.body, overwrite=overwrite)
        except ApiError as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS" and "already exists" in exc.message:
                raise ApiError(409, exc.error_code, exc.message) from None
            raise
        return {}

    def _read_file(self, request: RecordedRequest) -> Any:
        path = "/" + unquote(request.path[len("/api/2.0/workspace-files/") :])
        obj = self.objects.get(_canonical(path))
        if obj is None or obj.object_type != "FILE":
            raise _not_found(path)
        return obj.content

    def _export(self, request: RecordedRequest) -> Any:
        path = request.query.get("path", "")
        obj = self.objects.get(_canonical(path))
        if obj is None or obj.object_type == "DIRECTORY":
            raise _not_found(path)
        if request.query.get("direct_download") == "true":
            return obj.content
        return {"content": base64.b64encode(obj.content).decode(), "file_type": "py"}

    def _delete_route(self, request: RecordedRequest) -> Any:
        spec = request.json or {}
        self._delete(spec["path"], bool(spec.get("recursive")))
        return {}

    # -- permissions -------------------------------------------------------------------------

    def _permission_key(self, request: RecordedRequest) -> tuple[str, str]:
        parts = request.path[len("/api/2.0/permissions/") :].strip("/").split("/")
        return "/".join(parts[:-1]), parts[-1]

    def _get_permissions(self, request: RecordedRequest) -> Any:
        object_type, object_id = self._permission_key(request)
        acl = [
            {
                "user_name": e.get("user_name"),
                "group_name": e.get("group_name"),
                "service_principal_name": e.get("service_principal_name"),
                "all_permissions": [{"permission_level": e["permission_level"]}],
            }
            for e in self.permissions.get((object_type, object_id), [])
        ]
        return {
            "object_id": f"/{object_type}/{object_id}",
            "object_type": object_type.rstrip("s"),
            "access_control_list": [{k: v for k, v in e.items() if v} for e in acl],
        }

    def _set_permissions(self, request: RecordedRequest) -> Any:
        key = self._permission_key(request)
        acl = (request.json or {}).get("access_control_list") or []
        if request.method == "PATCH":
            self.permissions[key] = [*self.permissions.get(key, []), *acl]
        else:
            self.permissions[key] = list(acl)
        return self._get_permissions(request)

    # -- jobs --------------------------------------------------------------------------------

    def _job(self, job_id: Any) -> dict[str, Any]:
        try:
            return self.jobs[int(job_id)]
        except (KeyError, TypeError, ValueError):
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Job {job_id} does not exist."
            ) from None

    def _jobs_create(self, request: RecordedRequest) -> Any:
        settings = dict(request.json or {})
        settings.pop("access_control_list", None)
        job_id = next(self._ids)
        self.jobs[job_id] = {
            "job_id": job_id,
            "creator_user_name": self.user_name,
            "run_as_user_name": self.user_name,
            "created_time": int(time.time() * 1000),
            "settings": settings,
        }
        return {"job_id": job_id}

    def _jobs_reset(self, request: RecordedRequest) -> Any:
        spec = request.json or {}
        self._job(spec.get("job_id"))["settings"] = dict(spec.get("new_settings") or {})
        return {}

    def _jobs_update(self, request: RecordedRequest) -> Any:
        spec = request.json or {}
        job = self._job(spec.get("job_id"))
        settings = dict(job["settings"])
        settings.update(spec.get("new_settings") or {})
        for name in spec.get("fields_to_remove") or []:
            settings.pop(name, None)
        job["settings"] = settings
        return {}

    def _jobs_get(self, request: RecordedRequest) -> Any:
        return self._job(request.query.get("job_id"))

    def _jobs_list(self, request: RecordedRequest) -> Any:
        name = request.query.get("name")
        expand = request.query.get("expand_tasks", "false").lower() == "true"
        jobs = []
        for job in sorted(self.jobs.values(), key=lambda j: j["job_id"]):
            if name and job["settings"].get("name") != name:
                continue
            settings = dict(job["settings"])
            if not expand:
                settings.pop("tasks", None)
                settings.pop("job_clusters", None)
            jobs.append({**job, "settings": settings})
        return {"jobs": jobs, "has_more": False}

    def _jobs_delete(self, request: RecordedRequest) -> Any:
        job_id = (request.json or {}).get("job_id")
        self._job(job_id)
        del self.jobs[int(job_id)]
        return {}

    # -- runs --------------------------------------------------------------------------------

    def _run_now(self, request: RecordedRequest) -> Any:
        spec = request.json or {}
        job = self._job(spec.get("job_id"))
        settings = job["settings"]
        plan = self.run_plans.get(settings.get("name", ""), self.default_run_plan)
        defaults = {p["name"]: p.get("default", "") for p in settings.get("parameters") or []}
        given = spec.get("job_parameters") or {}
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Job parameters {unknown} are not defined."
            )
        run_id = next(self._ids)
        number = 1 + sum(1 for r in self.runs.values() if r["job_id"] == job["job_id"])
        self.runs[run_id] = {
            "run_id": run_id,
            "job_id": job["job_id"],
            "number_in_job": number,
            "run_name": settings.get("name"),
            "creator_user_name": self.user_name,
            "start_time": int(time.time() * 1000),
            "job_parameters": [
                {"name": n, "default": d, **({"value": given[n]} if n in given else {})}
                for n, d in defaults.items()
            ],
            "run_page_url": f"{self.url}/jobs/{job['job_id']}/runs/{run_id}",
            "_plan": plan,
        }
        self._run_polls[run_id] = 0
        return {"run_id": run_id, "number_in_job": number}

    def _run_view(self, run: dict[str, Any]) -> dict[str, Any]:
        plan: RunPlan = run["_plan"]
        polls = self._run_polls.get(run["run_id"], 0)
        view = {k: v for k, v in run.items() if not k.startswith("_")}
        if run.get("_cancelled"):
            state = {"life_cycle_state": "TERMINATED", "result_state": "CANCELED"}
        elif polls <= plan.polls:
            state = {"life_cycle_state": "RUNNING"}
        else:
            state = {"life_cycle_state": "TERMINATED", "result_state": plan.result_state}
        state["state_message"] = plan.message if state.get("result_state") == "FAILED" else ""
        view["state"] = state
        if state["life_cycle_state"] == "TERMINATED":
            view["end_time"] = view["start_time"] + 1000
        return view

    def _runs_get(self, request: RecordedRequest) -> Any:
        run_id = int(request.query.get("run_id") or 0)
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        self._run_polls[run_id] = self._run_polls.get(run_id, 0) + 1
        return self._run_view(run)

    def _runs_list(self, request: RecordedRequest) -> Any:
        job_id = request.query.get("job_id")
        active_only = request.query.get("active_only", "false").lower() == "true"
        runs = []
        for run in sorted(self.runs.values(), key=lambda r: -r["run_id"]):
            if job_id and str(run["job_id"]) != job_id:
                continue
            view = self._run_view(run)
            if active_only and view["state"]["life_cycle_state"] == "TERMINATED":
                continue
            runs.append(view)
        return {"runs": runs, "has_more": False}

    def _runs_cancel(self, request: RecordedRequest) -> Any:
        run_id = int((request.json or {}).get("run_id") or 0)
        if run_id in self.runs:
            self.runs[run_id]["_cancelled"] = True
        return {}

    def _runs_get_output(self, request: RecordedRequest) -> Any:
        run_id = int(request.query.get("run_id") or 0)
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        return {"metadata": self._run_view(run)}


__all__ = ["RecordedRequest", "WorkspaceObject", "WorkspaceStandIn"]
