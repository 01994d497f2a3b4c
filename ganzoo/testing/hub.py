"""An offline Hugging Face Hub-compatible HTTP server for tests (`http.server` in a thread; PyYAML for cards).

`HubServer` answers what `huggingface_hub` needs to create repos and branches, upload files and folders (both the
`create_commit` path and the xet pipeline, since every file is answered "regular"), read repo info and trees,
download files (HEAD, GET, Range) and list models with `HfApi.list_models`'s filters (tags from the cards' front
matter, search, author, pipeline tag, sort, limit; downloads are counted GETs of config.json)::

    from huggingface_hub import HfApi
    from ganzoo.testing import HubServer

    with HubServer({"hf_test": "user"}) as hub:  # a free port on 127.0.0.1
        api = HfApi(endpoint=hub.url, token="hf_test")
        api.create_repo("user/tiny")
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="user/tiny")
        assert hub.state.repos[("model", "user/tiny")].resolve("main").files["a.txt"] == b"hello"

Functions that read the endpoint from `huggingface_hub.constants` (`hf_hub_download`, `HfApi()` without an
endpoint) need `HF_ENDPOINT` set before huggingface_hub is imported, or `constants.ENDPOINT` and
`constants.HUGGINGFACE_CO_URL_TEMPLATE` patched (see ganzoo's own tests/conftest.py).

Every repo keeps its whole commit history, so an older commit's sha still resolves its own files; commit shas are
40 hex digits, distinct across server instances (each mixes a random salt in). Tokens: `tokens` maps a token to a
user name; writing needs the token of the repo's namespace (no token or an unknown one: 401; another user's token:
403). Private repos are readable by their owner only (others get 404 RepoNotFound, as the Hub answers). State lives
in memory and is lost when the server stops. Unsupported: organizations, pull requests, LFS/xet storage (files are
always uploaded inline), deleting branches, listing commits.

From a shell, `python -m ganzoo.testing.hub [--port N] [--host H] [--token TOKEN=USER ...]` serves until Ctrl-C or
SIGTERM (exit 0). The default port 0 picks a free one; without `--token` the one token is `hf_test`, for the user
`user`. It prints one line: the URL and the `HF_ENDPOINT=... HF_TOKEN=...` to export (HF_TOKEN is the first token).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import secrets
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DEFAULT_TOKENS", "Commit", "HubServer", "HubState", "Repo", "main"]

DEFAULT_TOKENS: dict[str, str] = {"hf_test": "user"}
"""The tokens `python -m ganzoo.testing.hub` accepts when no `--token` is given: `hf_test`, for the user `user`."""

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def git_blob_sha1(content: bytes) -> str:
    """The git blob id of `content`, which the Hub reports as a file's `oid` and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    """One commit: its sha, its parent's sha (None for a repo's first commit), its message and every file it holds."""

    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    """A repo (`repo_id` is "namespace/name", `repo_type` "model", "dataset" or "space"): all its commits by sha and
    its branches (name -> head sha)."""

    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    downloads: int = 0
    """GET requests of the repo's config.json (what the Hub counts as a model's downloads by default)."""

    def resolve(self, revision: str) -> Commit | None:
        """The commit a branch name or a full 40-digit sha names, or None."""
        oid = self.branches.get(revision) or (revision if COMMIT_RE.match(revision) else None)
        return self.commits.get(oid) if oid else None


class _ApiError(Exception):
    """An error answer: HTTP status, message (also in X-Error-Message), Hub error code, extra headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


class HubState:
    """What a server holds, for tests to inspect (hold `lock` while the server is serving requests).

    `tokens` maps a token to its user name (edit it to add or revoke users); `repos` maps (repo_type, repo_id) to a
    `Repo`; `requests` logs every request as (method, path) in arrival order.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.tokens: dict[str, str] = dict(tokens)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._counter = 0
        self._salt = secrets.token_hex(16)  # so that a restarted server never repeats an earlier server's shas

    def new_commit(self, repo: Repo, parent: Commit | None, message: str, files: dict[str, bytes]) -> Commit:
        """Record a commit of `files` on top of `parent` in `repo` (branches are left as they are) and return it."""
        self._counter += 1
        oid = hashlib.sha1(f"{self._salt}:{repo.repo_id}:{self._counter}:{message}".encode()).hexdigest()
        commit = Commit(oid, parent.oid if parent else None, message, files)
        repo.commits[oid] = commit
        return commit


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests from the server's `HubState` (one request at a time, under its lock)."""

    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ------------------------------------------------------------------------------------------- plumbing

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return self.server.url

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _user(self, required: bool) -> str | None:
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        user = self.state.tokens.get(token) if token else None
        if required and user is None:
            raise _ApiError(401, "Invalid credentials in Authorization header")
        return user

    def _repo(self, kind: str, namespace: str, name: str, write: bool = False) -> Repo:
        repo = self.state.repos.get((REPO_TYPES.get(kind, kind), f"{namespace}/{name}"))
        user = self._user(required=write)
        if repo is None or (repo.private and user != namespace):
            raise _ApiError(404, "Repository not found", "RepoNotFound")
        if write and user != namespace:
            raise _ApiError(403, f"You don't have the rights to write to {namespace}/{name}")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _ApiError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/")[1:]]  # split first, then unquote (revisions hold '/')
        query = parse_qs(split.query)
        body = self._body() if method == "POST" else b""
        with self.state.lock:
            self.state.requests.append((method, split.path))
            try:
                self._route(method, parts, query, body)
            except _ApiError as exc:
                headers = {**exc.headers, "X-Error-Message": str(exc)}
                if exc.code:
                    headers["X-Error-Code"] = exc.code
                self._send(exc.status, json.dumps({"error": str(exc)}).encode(), headers, head=method == "HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ---------------------------------------------------------------------------------------------- routes

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]], body: bytes) -> None:
        if parts[:1] == ["api"]:
            self._api(method, parts[1:], query, body)
        elif method in ("GET", "HEAD") and len(parts) >= 5 and "resolve" in parts[:4]:
            kind = "models"
            if parts[0] in ("datasets", "spaces"):
                kind, parts = parts[0], parts[1:]
            if parts[2] != "resolve":
                raise _ApiError(404, "not found")
            self._resolve(method, self._repo(kind, parts[0], parts[1]), parts[3], "/".join(parts[4:]))
        else:
            raise _ApiError(404, "not found")

    def _api(self, method: str, parts: list[str], query: dict[str, list[str]], body: bytes) -> None:
        if method == "GET" and parts == ["whoami-v2"]:
            return self._json(200, {"type": "user", "name": self._user(required=True)})
        if method == "POST" and parts == ["validate-yaml"]:
            return self._json(200, {"errors": [], "warnings": []})
        if method == "POST" and parts in (["repos", "create"], ["repos", "delete"]):
            return self._create_or_delete(parts[1], json.loads(body or b"{}"))
        if method == "GET" and parts == ["models"]:
            return self._list_models(query)
        if len(parts) < 3 or parts[0] not in REPO_TYPES:
            raise _ApiError(404, "not found")
        kind, namespace, name, rest = parts[0], parts[1], parts[2], parts[3:]
        if method == "GET" and (not rest or rest[0] == "revision"):
            repo = self._repo(kind, namespace, name)
            commit = self._commit(repo, rest[1] if len(rest) > 1 else "main")
            siblings = [{"rfilename": path} for path in sorted(commit.files)]
            info = {"id": repo.repo_id, "sha": commit.oid, "siblings": siblings, "private": repo.private}
            return self._json(200, {**info, "lastModified": "2026-01-01T00:00:00.000Z"})
        if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
            return self._tree(self._commit(self._repo(kind, namespace, name), rest[1]), "/".join(rest[2:]), query)
        if method == "POST" and rest[:1] in (["preupload"], ["commit"], ["branch"]) and len(rest) == 2:
            repo = self._repo(kind, namespace, name, write=True)
            handler = {"preupload": self._preupload, "commit": self._new_commit, "branch": self._branch}[rest[0]]
            return handler(repo, rest[1], body)
        raise _ApiError(404, "not found")

    def _create_or_delete(self, action: str, payload: dict[str, Any]) -> None:
        user = self._user(required=True)
        namespace = payload.get("organization") or user
        if namespace != user:
            raise _ApiError(403, f"You don't have the rights to create or delete repos in {namespace}")
        repo_type = payload.get("type") or "model"
        key = (repo_type, f"{namespace}/{payload['name']}")
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.base}/{prefix}{key[1]}"
        if action == "delete":
            if self.state.repos.pop(key, None) is None:
                raise _ApiError(404, "Repository not found", "RepoNotFound")
            return self._json(200, {})
        if key in self.state.repos:
            return self._json(409, {"error": "You already created this model repo", "url": url})
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        repo = Repo(key[1], repo_type, private)
        initial = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        repo.branches["main"] = self.state.new_commit(repo, None, "initial commit", initial).oid
        self.state.repos[key] = repo
        self._json(200, {"url": url, "name": key[1]})

    def _list_models(self, query: dict[str, list[str]]) -> None:
        """`GET /api/models` as `HfApi.list_models` calls it: every `filter` value must be one of a repo's tags (its
        card's `tags`, `library_name`, `pipeline_tag` and `base_model:<id>`), `search` is a case-insensitive
        substring of the repo id, `author` its namespace, `pipeline_tag` the card's; `sort` (downloads, likes,
        lastModified, createdAt, id) with `direction=-1` for descending, `limit`; `cardData` adds the front matter."""
        user = self._user(required=False)
        wanted = set(query.get("filter", []))
        search = query.get("search", [""])[0].lower()
        author, pipeline = query.get("author", [None])[0], query.get("pipeline_tag", [None])[0]
        rows = []
        for (kind, repo_id), repo in sorted(self.state.repos.items()):
            if kind != "model" or (repo.private and repo_id.split("/")[0] != user):
                continue
            head = repo.resolve("main")
            card = _front_matter(head.files.get("README.md", b"")) if head else {}
            tags = _card_tags(card)
            if not wanted <= set(tags) or search not in repo_id.lower():
                continue
            if (author and repo_id.split("/")[0] != author) or (pipeline and card.get("pipeline_tag") != pipeline):
                continue
            row = {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": head.oid if head else None,
                "private": repo.private,
                "downloads": repo.downloads,
                "likes": 0,
                "tags": tags,
                "pipeline_tag": card.get("pipeline_tag"),
                "library_name": card.get("library_name"),
                "createdAt": "2026-01-01T00:00:00.000Z",
                "lastModified": "2026-01-01T00:00:00.000Z",
            }
            if query.get("cardData", ["false"])[0].lower() == "true" or query.get("full", ["false"])[0] == "true":
                row["cardData"] = card
            rows.append(row)
        sort = query.get("sort", [None])[0]
        if sort:
            rows.sort(key=lambda row: row.get(sort) or 0, reverse=query.get("direction", ["-1"])[0] == "-1")
        limit = query.get("limit", [None])[0]
        self._json(200, rows[: int(limit)] if limit else rows)

    def _tree(self, commit: Commit, prefix: str, query: dict[str, list[str]]) -> None:
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, content in sorted(commit.files.items()):
            if not path.startswith(root):
                continue
            pieces = path[len(root) :].split("/")
            for depth in range(1, len(pieces)):  # the directories on the way
                directory = root + "/".join(pieces[:depth])
                if recursive or depth == 1:
                    entries.setdefault(directory, {"type": "directory", "path": directory, "oid": "0" * 40})
            if recursive or len(pieces) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
        if root and not entries:
            raise _ApiError(404, f"{prefix} not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        self._json(200, list(entries.values()))

    def _resolve(self, method: str, repo: Repo, revision: str, path: str) -> None:
        commit = self._commit(repo, revision)
        content = commit.files.get(path)
        if content is None:
            raise _ApiError(404, f"{path} not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_sha1(content)}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        status, data = 200, content
        if method == "GET" and path == "config.json":
            repo.downloads += 1
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and (match[1] or match[2]):
            size = len(content)
            start, end = (int(match[1]), int(match[2] or size - 1)) if match[1] else (size - int(match[2]), size - 1)
            start, end = max(start, 0), min(end, size - 1)
            status, data = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, data, headers, head=method == "HEAD")

    def _preupload(self, repo: Repo, revision: str, body: bytes) -> None:
        head = self._commit(repo, revision)
        files = []
        for entry in json.loads(body).get("files", []):
            existing = head.files.get(entry["path"])
            oid = git_blob_sha1(existing) if existing is not None else None
            files.append({"path": entry["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": files, "commitOid": head.oid})

    def _new_commit(self, repo: Repo, revision: str, body: bytes) -> None:
        if revision not in repo.branches:
            raise _ApiError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        head = repo.commits[repo.branches[revision]]
        files = dict(head.files)
        summary = ""
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent and parent != head.oid:
                    raise _ApiError(412, "A commit has happened since. Please refresh and try again.")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(folder)}
            else:
                raise _ApiError(400, f"this test server does not support {key!r} operations")
        commit = self.state.new_commit(repo, head, summary, files)
        repo.branches[revision] = commit.oid
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        url = f"{self.base}/{prefix}{repo.repo_id}/commit/{commit.oid}"
        self._json(200, {"commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def _branch(self, repo: Repo, branch: str, body: bytes) -> None:
        if branch in repo.branches:
            raise _ApiError(409, f"Reference already exists: refs/heads/{branch}")
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        repo.branches[branch] = self._commit(repo, start).oid
        self._json(200, {})


class HubServer(ThreadingHTTPServer):
    """A Hub-compatible server on `host`:`port` (port 0: a free one), listening from construction on.

    `with HubServer({"tok-alice": "alice"}) as hub:` serves in a background thread until the block ends, then closes
    the socket; `hub.url` is the endpoint to give huggingface_hub (`HfApi(endpoint=hub.url, token="tok-alice")` or
    `HF_ENDPOINT`) and `hub.state` the `HubState` to inspect. `tokens` maps each accepted token to its user name.
    Constructing raises OSError when the address cannot be bound (a port in use, say). Without the `with` block,
    `serve_forever()` serves in the calling thread and `server_close()` releases the port.
    """

    daemon_threads = True

    def __init__(self, tokens: Mapping[str, str], port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), Handler)
        self.state: HubState = HubState(tokens)
        """The server's repos, tokens and request log."""
        bound_host, bound_port = self.server_address[:2]
        self.url: str = f"http://{bound_host}:{bound_port}"
        """The endpoint, `http://HOST:PORT` with the port actually bound, no trailing slash."""
        self._thread = threading.Thread(target=self.serve_forever, name="hub-server", daemon=True)

    def __enter__(self) -> HubServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving, wait for the background thread and close the socket."""
        self.shutdown()
        self.server_close()
        self._thread.join()


# ------------------------------------------------------------------------------------------------ command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _front_matter(readme: bytes) -> dict[str, Any]:
    """The YAML front matter of a model card ({} when it has none or it does not parse)."""
    import yaml  # PyYAML, which huggingface_hub requires

    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    try:
        data = yaml.safe_load(match[1]) if match else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _card_tags(card: Mapping[str, Any]) -> list[str]:
    """A repo's tags as the Hub computes them from its card: the card's tags, its library, its pipeline tag and
    `base_model:<id>` for each base model."""
    tags = [str(tag) for tag in card.get("tags") or []]
    tags += [str(card[key]) for key in ("library_name", "pipeline_tag") if card.get(key)]
    bases = card.get("base_model") or []
    tags += [f"base_model:{base}" for base in ([bases] if isinstance(bases, str) else bases)]
    return list(dict.fromkeys(tags))


def _token(value: str) -> tuple[str, str]:
    token, sep, user = value.partition("=")
    if not sep or not token or not user or "/" in user:
        raise argparse.ArgumentTypeError(f"expected TOKEN=USER, got {value!r}")
    return token, user


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value!r}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ganzoo.testing.hub`: serve until SIGINT (Ctrl-C) or SIGTERM, then return 0; 1 if the address
    cannot be bound (a one-line error on stderr). Bad arguments exit 2 with a one-line error."""
    parser = _Parser(
        prog="python -m ganzoo.testing.hub",
        description="Serve an offline, in-memory Hugging Face Hub-compatible API for tests.",
    )
    parser.add_argument("--port", type=_port, default=0, help="port to listen on (default 0: a free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--token",
        type=_token,
        action="append",
        metavar="TOKEN=USER",
        help="accept TOKEN as USER; repeatable (default: hf_test=user). HF_TOKEN is printed for the first one",
    )
    args = parser.parse_args(argv)
    tokens = dict(args.token) if args.token else dict(DEFAULT_TOKENS)
    try:
        server = HubServer(tokens, port=args.port, host=args.host)
    except OSError as exc:
        print(f"{parser.prog}: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    users = ", ".join(sorted(set(tokens.values())))
    line = f"Hub server at {server.url} (users: {users}); export HF_ENDPOINT={server.url} HF_TOKEN={next(iter(tokens))}"
    try:
        print(line, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
