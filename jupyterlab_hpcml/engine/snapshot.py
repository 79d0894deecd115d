"""Project snapshots: which files, their content-addressed copies, and the code identity.

* ``collect_files`` decides what belongs to the project: gitignore semantics
  (``pathspec``) for every ``.gitignore`` in the tree and for the backend
  config's ``Exclude`` patterns; ``.git`` is always left out.
* ``take_snapshot`` stores each file once under ``objects/ab/abcdef…`` (sha256)
  and writes a manifest ``snapshots/<id>.json``; the id is the hash of the
  manifest, so the same code always gives the same id.
* ``code_identity`` adds git's view (commit + hash of uncommitted changes).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pathspec

from ..core.errors import Problem, UserInputError
from ..core.snapshots import Snapshot, SnapshotFile

# Backends lay snapshots out too, so these two live in core/ (imported from here as before).
from ..core.snapshots import load_snapshot as load_snapshot
from ..core.snapshots import materialize as materialize
from .models import CodeIdentity

_CHUNK = 1 << 20
_GIT_TIMEOUT = 60  # seconds; a huge work tree must not hang a submission forever

# One .gitignore: (its folder relative to the project root, "" for the root or above;
# the prefix that makes a project path relative to it, "" unless it is above; its rules).
_Rules = tuple[tuple[str, str, pathspec.GitIgnoreSpec], ...]


def _read_gitignore(folder: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        lines = (folder / ".gitignore").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines.splitlines())


def _repo_rules(real_root: Path) -> _Rules:
    """The .gitignore files above the project, up to the root of its git work tree:
    git applies them to the project's files too."""
    if (real_root / ".git").exists():
        return ()
    chain: list[Path] = []
    for folder in real_root.parents:
        chain.append(folder)
        if (folder / ".git").exists():
            break
    else:
        return ()  # not in a repository
    rules = []
    for folder in reversed(chain):  # outermost first, as the walk appends deeper ones
        spec = _read_gitignore(folder)
        if spec is not None:
            rules.append(("", real_root.relative_to(folder).as_posix() + "/", spec))
    return tuple(rules)


# ---------------------------------------------------------------------------
# Which files


class _Collector:
    def __init__(self, root: Path, exclude: Sequence[str], gitignore: bool = True):
        self.root = root
        self.real_root = root.resolve()
        self.exclude = pathspec.GitIgnoreSpec.from_lines(list(exclude)) if exclude else None
        self.gitignore = gitignore
        self.files: list[tuple[str, Path]] = []
        self.notes: list[str] = []

    def ignored(self, rel: str, is_dir: bool, rules: _Rules) -> bool:
        """Gitignore precedence: Exclude first, then the deepest .gitignore that matches."""
        path = rel + "/" if is_dir else rel  # a trailing slash lets `build/` patterns match
        if self.exclude is not None:
            verdict = self.exclude.check_file(path).include
            if verdict is not None:
                return verdict
        for base, prefix, spec in reversed(rules):
            sub = prefix + (path[len(base) + 1:] if base else path)
            verdict = spec.check_file(sub).include
            if verdict is not None:
                return verdict
        return False

    def inside(self, target: Path) -> bool:
        return target == self.real_root or self.real_root in target.parents

    def walk(self, folder: Path, rel: str, rules: _Rules, active: frozenset[Path]) -> None:
        """Descend into ``folder``; ``active`` holds the real folders on the current path
        so that a link to an ancestor folder cannot loop forever."""
        rules = self.with_gitignore(folder, rel, rules)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.notes.append(f"skipped {rel or '.'}: {exc.strerror}")
            return
        for entry in entries:
            if entry.name == ".git":  # repository data (a folder, or a file in worktrees)
                continue
            self.visit(entry, f"{rel}/{entry.name}" if rel else entry.name, rules, active)

    def visit(
        self, entry: os.DirEntry[str], rel: str, rules: _Rules, active: frozenset[Path]
    ) -> None:
        path = Path(entry.path)
        if entry.is_symlink():
            self.visit_link(path, rel, rules, active)
        elif entry.is_dir():
            if not self.ignored(rel, True, rules):
                self.walk(path, rel, rules, active | {path.resolve()})
        elif entry.is_file():
            if not self.ignored(rel, False, rules):
                self.files.append((rel, path))
        elif not self.ignored(rel, False, rules):
            self.notes.append(f"skipped {rel}: not a regular file")

    def visit_link(self, path: Path, rel: str, rules: _Rules, active: frozenset[Path]) -> None:
        """Links inside the project count as what they point to; others are noted,
        unless ignored anyway (a note about an ignored link would only be noise)."""
        try:
            target: Path | None = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop of links
            target = None
        is_dir = target is not None and target.is_dir()
        if self.ignored(rel, is_dir, rules):
            return
        if target is None:
            self.notes.append(f"skipped {rel}: broken link")
        elif not self.inside(target):
            self.notes.append(f"skipped {rel}: points outside the project")
        elif target in active:
            self.notes.append(f"skipped {rel}: link loop")
        elif is_dir:
            self.walk(path, rel, rules, active | {target})
        elif target.is_file():
            self.files.append((rel, path))
        else:
            self.notes.append(f"skipped {rel}: not a regular file")

    def with_gitignore(self, folder: Path, rel: str, rules: _Rules) -> _Rules:
        spec = _read_gitignore(folder) if self.gitignore else None
        return rules if spec is None else (*rules, (rel, "", spec))

    def start_rules(self) -> _Rules:
        if not self.gitignore:
            return ()
        rules = _repo_rules(self.real_root)
        verdicts = (spec.check_file(prefix).include for _, prefix, spec in reversed(rules))
        if next((v for v in verdicts if v is not None), False):
            # Snapshotting nothing would help no one: the user chose this folder.
            self.notes.append(
                "the project folder is ignored by its git repository; "
                "only .gitignore files inside the project apply"
            )
            return ()
        return rules


def collect_files(
    project_dir: Path, exclude: Sequence[str] = (), *, gitignore: bool = True
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Files of the project as (posix relpath, path), sorted by relpath, plus notes.

    ``exclude`` holds gitignore patterns relative to the project root; they take
    precedence over ``.gitignore`` files, so ``!name`` can bring back an ignored file.
    Symlinks to files inside the project are included (their content is copied);
    links leading outside the project, or nowhere, are skipped with a note.
    ``gitignore=False``: git's rules do not apply (a data folder is usually ignored by git).
    """
    root = Path(project_dir)
    if not root.is_dir():
        raise UserInputError(Problem(f"not a folder: {root}", file=str(root)))
    collector = _Collector(root, exclude, gitignore)
    collector.walk(root, "", collector.start_rules(), frozenset({collector.real_root}))
    collector.files.sort(key=lambda item: item[0])
    return collector.files, collector.notes


# ---------------------------------------------------------------------------
# Content-addressed store


def _object_path(object_dir: Path, digest: str) -> Path:
    return object_dir / digest[:2] / digest


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _store_copy(path: Path, object_dir: Path) -> str:
    """Copy ``path`` into the store, hashing what is copied; return that hash.

    Temp file + ``os.replace``: concurrent writers of the same object each
    rename a complete file onto the same name, so readers never see a partial one.
    """
    staging = object_dir / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=staging)
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                h.update(chunk)
                dst.write(chunk)
        os.chmod(tmp, 0o644)
        digest = h.hexdigest()
        final = _object_path(object_dir, digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _store_file(path: Path, object_dir: Path) -> str:
    digest = hash_file(path)
    if _object_path(object_dir, digest).is_file():
        return digest
    # Hash again while copying: if the file changed in between, the object is
    # named after what was actually stored.
    return _store_copy(path, object_dir)


def _snapshot_id(files: list[SnapshotFile]) -> str:
    lines = sorted(f"{f.relpath}\0{f.sha256}\0{f.mode:o}" for f in files)
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store_bytes(content: bytes, object_dir: Path) -> str:
    staging = object_dir / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return _store_copy(Path(tmp), object_dir)
    finally:
        Path(tmp).unlink(missing_ok=True)


def take_snapshot(
    project_dir: Path, object_dir: Path, manifest_dir: Path, exclude: Sequence[str] = (),
    add: Mapping[str, bytes] | None = None, drop: Collection[str] = (),
) -> Snapshot:
    """Store the project's files (each content once) and write the manifest.

    ``add``: files (relative path → content) put into the snapshot only, replacing a
    project file of the same path; ``drop``: project files left out (a cell run's own
    ``MLproject`` replaces the project's, whatever its spelling)."""
    paths, notes = collect_files(project_dir, exclude)
    gone = set(add or ()) | set(drop)
    files: list[SnapshotFile] = []
    for rel, path in paths:
        if rel in gone:
            continue
        mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777  # follows links, like the content
        digest = _store_file(path, object_dir)
        # The size of what was stored, in case the file changed while it was read.
        size = _object_path(object_dir, digest).stat().st_size
        files.append(SnapshotFile(relpath=rel, size=size, mode=mode, sha256=digest))
    for rel, content in (add or {}).items():
        files.append(SnapshotFile(relpath=rel, size=len(content), mode=0o644,
                                  sha256=_store_bytes(content, object_dir)))
    snapshot = Snapshot(id=_snapshot_id(files), files=files, object_dir=object_dir, notes=notes)
    _write_json_atomic(
        manifest_dir / f"{snapshot.id}.json",
        {"id": snapshot.id, "files": [asdict(f) for f in files], "notes": notes},
    )
    return snapshot


# ---------------------------------------------------------------------------
# Code identity


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    """Run git; None if git is missing or does not answer in time."""
    git = shutil.which("git")
    if git is None:
        return None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # never take the index lock
    try:
        return subprocess.run(
            [git, "-c", "core.quotepath=off", *args],
            cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT, env=env, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def _git_out(cwd: Path, *args: str) -> bytes | None:
    result = _git(cwd, *args)
    return result.stdout if result is not None and result.returncode == 0 else None


def _untracked(cwd: Path) -> Iterator[tuple[str, str]]:
    """(name, content hash) of untracked, non-ignored files under ``cwd``."""
    out = _git_out(cwd, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    for name in sorted(n for n in (out or b"").decode("utf-8", "surrogateescape").split("\0") if n):
        path = cwd / name
        if path.is_symlink():
            target = os.readlink(path).encode("utf-8", "surrogateescape")
            digest = hashlib.sha256(target).hexdigest()
        elif path.is_file():
            digest = hash_file(path)
        else:
            continue
        yield name, digest


def _dirty_hash(cwd: Path, base: str) -> str | None:
    """sha256 of the diff against ``base`` plus untracked files (None when clean)."""
    diff = _git_out(
        cwd, "diff", base, "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--", "."
    )
    if diff is None:
        return None
    untracked = list(_untracked(cwd))
    if not diff and not untracked:
        return None
    h = hashlib.sha256(diff)
    for name, digest in untracked:
        h.update(f"\0untracked\0{name}\0{digest}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def code_identity(project_dir: Path, snapshot: Snapshot) -> CodeIdentity:
    """What code runs: the snapshot hash always; the git commit and a hash of the
    uncommitted changes (of the project folder) when it lies in a git work tree."""
    identity = CodeIdentity(content_hash=snapshot.id)
    cwd = Path(project_dir)
    if _git_out(cwd, "rev-parse", "--is-inside-work-tree") != b"true\n":
        return identity
    if not _git_out(cwd, "ls-files", "--cached", "--", ".") and not any(_untracked(cwd)):
        # Git knows none of the project's files (e.g. its folder is ignored):
        # a commit would claim a provenance that does not exist.
        return identity
    head = _git_out(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head:
        identity.git_commit = head.decode().strip()
        identity.git_dirty_hash = _dirty_hash(cwd, "HEAD")
    else:
        # No commit yet: every file is a change against the empty tree.
        empty_tree = _git_out(cwd, "hash-object", "-t", "tree", "/dev/null")
        if empty_tree:
            identity.git_dirty_hash = _dirty_hash(cwd, empty_tree.decode().strip())
    return identity
